/**
 * Feature detection for the WASM builds, by validating tiny hand-made
 * modules. Each module holds one function `() -> v128` whose body is three
 * v128.const operands and one SIMD instruction.
 */

import { wasmApi } from "../../util/wasm-api.js";

function simdProbe(opcode: number[]): Uint8Array {
  const zero16 = new Array<number>(16).fill(0);
  const constOp = [0xfd, 0x0c, ...zero16]; // v128.const 0
  const body = [0x00 /* no locals */, ...constOp, ...constOp, ...constOp, ...opcode, 0x0b /* end */];
  const code = [0x01 /* one body */, body.length, ...body];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00, // "\0asm", version 1
    0x01,
    0x05,
    0x01,
    0x60,
    0x00,
    0x01,
    0x7b, // type section: () -> v128
    0x03,
    0x02,
    0x01,
    0x00, // function section: one function of type 0
    0x0a,
    code.length,
    ...code, // code section
  ]);
}

/** f32x4.relaxed_madd: prefix 0xfd, opcode 0x105 as LEB128 (0x85 0x02). */
export const RELAXED_MADD_PROBE = simdProbe([0xfd, 0x85, 0x02]);
/** Control probe for plain SIMD: v128.bitselect (prefix 0xfd, opcode 0x52), three v128 operands like relaxed_madd. */
export const PLAIN_SIMD_PROBE = simdProbe([0xfd, 0x52]);

let relaxedCache: boolean | undefined;
let simdCache: boolean | undefined;

/**
 * True when this runtime validates relaxed SIMD. On Node 20, where it is
 * behind --experimental-wasm-relaxed-simd, the flag is switched on here
 * (through node:v8, as the `ptp` command does) before giving up, so library
 * users get the relaxed build too; elsewhere (browsers, runtimes refusing
 * the flag) the answer is what the runtime validates.
 */
export function relaxedSimdSupported(): boolean {
  if (relaxedCache === undefined) {
    relaxedCache = validate(RELAXED_MADD_PROBE);
    if (!relaxedCache && enableRelaxedSimdFlag()) relaxedCache = validate(RELAXED_MADD_PROBE);
  }
  return relaxedCache;
}

/** Tries to switch on Node's relaxed-SIMD flag at run time; false where there is no node:v8 or it refuses. */
function enableRelaxedSimdFlag(): boolean {
  if (typeof process === "undefined" || process.env?.PTP_NO_RELAXED_FLAG === "1") return false;
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  const v8 = getBuiltin?.("node:v8") as { setFlagsFromString?: (flags: string) => void } | undefined;
  if (!v8?.setFlagsFromString) return false;
  try {
    v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
    return true;
  } catch {
    return false;
  }
}

/** True when this runtime validates fixed-width SIMD. */
export function simdSupported(): boolean {
  if (simdCache === undefined) simdCache = validate(PLAIN_SIMD_PROBE);
  return simdCache;
}

function validate(bytes: Uint8Array): boolean {
  try {
    const api = wasmApi();
    return api !== undefined && api.validate(bytes);
  } catch {
    return false;
  }
}
