import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { expf } from "../src/sampling/index.js";
import { fmaExact } from "../src/sampling/expf.js";

const f32 = new Float32Array(1);
const bitsView = new Uint32Array(f32.buffer);
const fromBits = (b: number) => ((bitsView[0] = b), f32[0]);
const toBits = (x: number) => ((f32[0] = x), bitsView[0]);

// expf(x) as computed by glibc 2.36 (x86-64, FMA path) for float32 x, as
// [bits of x, bits of expf(x)]. The first seven are cases where glibc's
// result differs from the correctly rounded value fround(Math.exp(x)).
const GLIBC_EXPF: Array<[number, number]> = [
  [0xc092537c, 0x3c293faf], // expf(-4.57269096)
  [0xc19fff5b, 0x310daf9d], // expf(-19.9996853)
  [0xc19ffda3, 0x310dce11], // expf(-19.9988461)
  [0xc19ffbca, 0x310deed5], // expf(-19.9979439)
  [0xc19ffb02, 0x310dfcb2], // expf(-19.9975624)
  [0xc19ffa20, 0x310e0c5e], // expf(-19.9971313)
  [0xc19fe4e5, 0x310f874c], // expf(-19.9867649)
  [0x00000000, 0x3f800000], // expf(0) = 1
  [0x80000000, 0x3f800000], // expf(-0) = 1
  [0x3f800000, 0x402df854], // expf(1)
  [0xbf800000, 0x3ebc5ab2], // expf(-1)
  [0x42b17217, 0x7f7fff84], // expf(88.7228317), largest finite result
  [0x42b17218, 0x7f800000], // expf(88.7228394) = Infinity
  [0xc2ce8ecf, 0x00000001], // expf(-103.278923) = 2^-149
  [0xc2ce8ed0, 0x00000001], // expf(-103.278931) = 2^-149 (glibc's may-underflow branch)
  [0xc2cff1b4, 0x00000001], // expf(-103.972076) = 2^-149
  [0xc2cff1b5, 0x00000000], // expf(-103.972084) = 0
  [0xc2aeac50, 0x007fffe6], // expf(-87.3365479), subnormal
  [0xc2aeac4f, 0x00800026], // expf(-87.3365402), smallest normal range
  [0xc1200000, 0x383e6bce], // expf(-10)
  [0xbe000000, 0x3f61eb51], // expf(-0.125)
  [0xb3800000, 0x3f7fffff], // expf(-2^-24)
];

describe("expf (glibc emulation used by softmaxF32)", () => {
  it("SAMP-EXPF-GLIBC: matches recorded glibc expf results bit for bit, including its non-correctly-rounded cases", () => {
    for (const [xb, yb] of GLIBC_EXPF) {
      const x = fromBits(xb);
      expect(toBits(expf(x)).toString(16), `expf(${x})`).toBe(yb.toString(16));
    }
    // The first seven are genuinely not the correctly rounded value.
    for (const [xb, yb] of GLIBC_EXPF.slice(0, 7)) {
      expect(toBits(Math.fround(Math.exp(fromBits(xb))))).not.toBe(yb);
    }
  });

  it("SAMP-EXPF-GLIBC: special values", () => {
    expect(expf(NaN)).toBeNaN();
    expect(expf(Infinity)).toBe(Infinity);
    expect(expf(-Infinity)).toBe(0);
    expect(expf(1000)).toBe(Infinity);
    expect(expf(-1000)).toBe(0);
  });

  it("SAMP-EXPF-GLIBC: within one float32 ulp of the correctly rounded exp, and a float32 value", () => {
    fc.assert(
      fc.property(fc.float({ min: -103, max: 88, noNaN: true }), (x) => {
        const y = expf(x);
        expect(Math.fround(y)).toBe(y);
        const ref = Math.fround(Math.exp(x));
        const d = Math.abs(toBits(y) - toBits(ref));
        expect(d).toBeLessThanOrEqual(1);
      }),
      { numRuns: 20000 },
    );
  });

  it("fmaExact rounds a * b + c once", () => {
    const e = 2 ** -52;
    // (1 + e)(1 - e) - 1 = -e^2 exactly; unfused arithmetic gives 0.
    expect((1 + e) * (1 - e) - 1).toBe(0);
    expect(fmaExact(1 + e, 1 - e, -1)).toBe(-(2 ** -104));
    expect(fmaExact(3, 5, 7)).toBe(22);
    expect(fmaExact(0, 5, 7)).toBe(7);
    expect(fmaExact(0.1, 10, -1)).toBe(5.551115123125783e-17);
    fc.assert(
      fc.property(
        fc.integer({ min: -(2 ** 26), max: 2 ** 26 }),
        fc.integer({ min: -(2 ** 26), max: 2 ** 26 }),
        fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
        (a, b, c) => {
          // Small integers: a * b + c is exact in double, so fused = unfused.
          expect(fmaExact(a, b, c)).toBe(a * b + c);
        },
      ),
    );
  });
});
