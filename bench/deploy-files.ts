// The deployment files of deploy/ as the drill runs them: the systemd unit's environment and
// command, and HAProxy's configuration with only its addresses changed. Every change is checked
// to have matched exactly what it expects, so a file that drifts from what the drill knows how to
// adapt fails the drill (and test/deploy.test.ts) instead of being silently ignored.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEPLOY_DIR = fileURLToPath(new URL('../deploy/', import.meta.url));
export const UNIT_FILE = join(DEPLOY_DIR, 'medspasync-pro@.service');
export const HAPROXY_FILE = join(DEPLOY_DIR, 'haproxy.cfg');
export const HAPROXY_503_FILE = join(DEPLOY_DIR, 'haproxy-503.http');

export interface ServiceUnit {
  workingDirectory: string;
  /** ExecStart split on spaces (the unit uses no quoting). */
  execStart: string[];
  /** Environment= assignments, in order, with %i not yet replaced. */
  environment: Array<[string, string]>;
  killSignal: string;
  timeoutStopSeconds: number;
}

/** The [Service] settings of a unit file that the drill reproduces. */
export function parseServiceUnit(text: string): ServiceUnit {
  const settings: Array<[string, string]> = [];
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    if (section === 'Service' && eq > 0) settings.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  const one = (key: string): string => {
    const values = settings.filter(([k]) => k === key).map(([, v]) => v);
    if (values.length !== 1) throw new Error(`the unit must set ${key}= exactly once (found ${values.length})`);
    return values[0]!;
  };
  const environment = settings
    .filter(([key]) => key === 'Environment')
    .map(([, value]): [string, string] => {
      const eq = value.indexOf('=');
      if (eq <= 0 || value.includes('"') || value.includes(' ')) throw new Error(`Environment=${value}: the drill reads one unquoted NAME=value per line`);
      return [value.slice(0, eq), value.slice(eq + 1)];
    });
  return {
    workingDirectory: one('WorkingDirectory'),
    execStart: one('ExecStart').split(/\s+/),
    environment,
    killSignal: one('KillSignal'),
    timeoutStopSeconds: Number(one('TimeoutStopSec')),
  };
}

export function readServiceUnit(): ServiceUnit {
  return parseServiceUnit(readFileSync(UNIT_FILE, 'utf8'));
}

/** The unit's environment for one instance (systemd's %i specifier replaced). */
export function unitEnvironment(unit: ServiceUnit, instance: string): Record<string, string> {
  return Object.fromEntries(unit.environment.map(([key, value]) => [key, value.replaceAll('%i', instance)]));
}

/** The script the unit's ExecStart runs with node, relative to its WorkingDirectory. */
export function unitScript(unit: ServiceUnit): string {
  const [node, script, ...rest] = unit.execStart;
  if (!node?.endsWith('/node') || !script || rest.length > 0) throw new Error(`ExecStart=${unit.execStart.join(' ')}: expected "<path>/node <script>"`);
  return script;
}

function replaceExactlyOnce(text: string, pattern: RegExp, replacement: string, what: string): string {
  const matches = text.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`))?.length ?? 0;
  if (matches !== 1) throw new Error(`deploy/haproxy.cfg: expected exactly one ${what}, found ${matches}`);
  return text.replace(pattern, replacement);
}

/**
 * deploy/haproxy.cfg for the drill: the `api` frontend bound to loopback in plain HTTP (no
 * certificate), the `http` redirect frontend left out, the server lines pointing at the drill's
 * instances, the 503 errorfile read from where the drill keeps it.
 */
export function haproxyConfigForDrill(text: string, options: { port: number; backends: number[]; errorFile: string }): string {
  let config = replaceExactlyOnce(text, /^frontend http\n(?:[ \t]+.*\n|[ \t]*\n)*/m, '', '"frontend http" section');
  config = replaceExactlyOnce(config, /^(frontend api\n)[ \t]+bind .*\n/m, `$1  bind 127.0.0.1:${options.port}\n`, '"bind" line first in "frontend api"');
  config = replaceExactlyOnce(config, /^[ \t]+errorfile 503 .*$/m, `  errorfile 503 ${options.errorFile}`, '"errorfile 503" line');
  const servers = options.backends.map((port, i) => `  server api${i + 1} 127.0.0.1:${port} check`).join('\n');
  config = replaceExactlyOnce(config, /^(?:[ \t]+server .*\n?)+/m, `${servers}\n`, 'block of "server" lines');
  return config;
}

export function readHaproxyConfigForDrill(options: { port: number; backends: number[]; errorFile: string }): string {
  return haproxyConfigForDrill(readFileSync(HAPROXY_FILE, 'utf8'), options);
}
