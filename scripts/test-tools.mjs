// The system tools some tests drive for real (HAProxy checks deploy/haproxy.cfg, Chromium drives the review page; see NEEDED), so
// that `npm test` works on a fresh Debian machine: as root with apt-get, what is missing is
// installed; elsewhere the missing tools are named, and the tests that need them fail saying so.
import { spawnSync } from 'node:child_process';

/** command -> Debian package */
const NEEDED = { haproxy: 'haproxy', chromium: 'chromium' };

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
const missing = Object.keys(NEEDED).filter((command) => !has(command));
if (missing.length > 0) {
  const packages = [...new Set(missing.map((command) => NEEDED[command]))];
  const canInstall = process.getuid?.() === 0 && has('apt-get');
  if (canInstall) {
    console.log(`installing ${packages.join(' ')} for the tests (apt-get) ...`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    spawnSync('apt-get', ['install', '-y', '-qq', ...packages], { stdio: 'inherit', env });
  } else {
    console.warn(`not installed: ${missing.join(', ')} (Debian: apt-get install ${packages.join(' ')}); the tests that use them will fail`);
  }
}
