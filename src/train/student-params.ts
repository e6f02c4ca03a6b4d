import type { ModelConfig } from "../model/config.js";
import { LINEAR_NAMES, linearShape, type LinearName } from "../model/weights.js";
import type { Student } from "../ptp/student-weights.js";
import { auxFeatureCount } from "../ptp/auxiliary.js";
import { Tensor } from "./autograd/index.js";
import type { LoraTensors } from "./graph.js";
import { makeParam, type Param } from "./param.js";

/**
 * A PTP student's trainable parts as Params that share the Student's arrays:
 * training updates the Student in place, so writing it out (writeStudent)
 * needs no copy. Trainable: LoRA A and B of every linear layer, the
 * auxiliary embedding, and (C-PTP) the start vector; the teacher stays frozen.
 */
export interface TrainableStudent {
  student: Student;
  params: Param[];
  lora: LoraTensors;
  aux: { weight?: Tensor; bias?: Tensor; anchors?: Tensor };
  start?: Tensor;
}

export function trainableStudent(student: Student, teacher: ModelConfig): TrainableStudent {
  const { config, weights } = student, params: Param[] = [];
  const p = (name: string, data: Float32Array, shape: number[], decay: boolean) => {
    const param = makeParam(name, shape, data, decay);
    params.push(param);
    return Tensor.param(param);
  };
  const r = config.rank;
  const layers = weights.layers.map((l, i) =>
    Object.fromEntries(
      LINEAR_NAMES.map((n) => {
        const [out, inp] = linearShape(teacher, n);
        return [n, { A: p(`layers.${i}.${n}.lora_A`, l[n].A, [r, inp], true), B: p(`layers.${i}.${n}.lora_B`, l[n].B, [out, r], true) }];
      }),
    ) as Record<LinearName, { A: Tensor; B: Tensor }>,
  );
  const dim = teacher.dim, aux: TrainableStudent["aux"] = {};
  if (config.aux.kind === "anchors") aux.anchors = p("aux.anchors", weights.aux.anchors!, [3, dim], false);
  else {
    aux.weight = p("aux.weight", weights.aux.weight!, [dim, auxFeatureCount(config.aux)], false);
    aux.bias = p("aux.bias", weights.aux.bias!, [dim], false);
  }
  const start = config.variant === "C" ? p("start", weights.start!, [dim], false) : undefined;
  return { student, params, lora: { layers, scale: config.alpha / config.rank }, aux, start };
}
