// Types for the one untyped dependency (jaro-winkler 0.2.x ships CommonJS without declarations).
declare module 'jaro-winkler' {
  /** Jaro-Winkler similarity in [0, 1] (1 = identical); the prefix boost applies above 0.7. */
  export default function jaroWinkler(a: string, b: string, options?: { caseSensitive?: boolean }): number;
}
