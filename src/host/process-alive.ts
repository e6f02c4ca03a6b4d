/**
 * Whether process `pid` is running on this machine (EPERM: it is, under
 * another user). Files named after their writer's pid (an output lock, a
 * temporary file of an atomic write) are left over from a process that is
 * gone only when this says so.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
