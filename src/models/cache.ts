import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Where converted builtins and downloads live: $GRAFT_CACHE, else $XDG_CACHE_HOME/graft, else ~/.cache/graft. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GRAFT_CACHE) return resolve(env.GRAFT_CACHE);
  if (env.XDG_CACHE_HOME) return join(resolve(env.XDG_CACHE_HOME), 'graft');
  return join(homedir(), '.cache', 'graft');
}

/** True when GRAFT_OFFLINE is set to anything but "" / "0" / "false". */
export function offlineFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.GRAFT_OFFLINE;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}
