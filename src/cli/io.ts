/** Where a command writes; the CLI binds it to the process, tests capture it. */
export interface Io {
  stdout(data: string | Uint8Array): void;
  stderr(data: string): void;
}

export const processIo: Io = {
  stdout: (data) => void process.stdout.write(data),
  stderr: (data) => void process.stderr.write(data),
};
