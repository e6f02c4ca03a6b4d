/**
 * The RoPE rotation angle of the pair (i, i+1) of a head at position pos:
 * pos * theta^(-i / headSize), rounded through float32 at every step exactly
 * as llama2.c computes it, so long positions rotate by the same angle as in
 * the reference program. Backends share this so their rotations agree.
 */
export function ropeAngle(pos: number, i: number, headSize: number, theta: number): number {
  const f = Math.fround;
  const freq = f(1 / f(Math.pow(theta, f(i / headSize))));
  return f(pos * freq);
}
