import { chain, range } from "../call.js";
import type { Decoder } from "../decoder.js";

/** The baseline: one sampled token per call, t_k = Pick(u(k), Q(. | t_<k)). */
export const arDecoder: Decoder<undefined> = {
  name: "ar",
  plan: (seq) => ({ seq, base: chain(seq.pending, seq.cached), slots: [] }),
  accept(seq, group, out) {
    const P = group.base.length;
    seq.finalize([seq.pickAt(seq.next, out.base[P - 1])]);
    seq.acceptedPerStep.push(1);
    return range(0, P);
  },
};
