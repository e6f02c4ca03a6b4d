import type { ModelConfig } from "../model/config.js";
import { LINEAR_NAMES, linearShape, type LinearName } from "../model/weights.js";
import type { Draft } from "../ptp/draft-model.js";
import { hasStartVector, slotInputOf, type AuxFields, type SlotInputKind } from "../ptp/files/ptp-file-parts.js";
import type { AuxEmbeddingConfig, AuxEmbeddingWeights, Student } from "../ptp/student-weights.js";
import { auxFeatureCount } from "../ptp/auxiliary.js";
import { Tensor } from "./autograd/index.js";
import { layerParams, trainableWeights, type GraphWeights, type LayerTensors, type LoraTensors } from "./graph.js";
import { makeParam, type Param } from "./param.js";

/**
 * The trainable parts of PTP models as Params that share the models' own
 * arrays: training updates a Student or Draft in place, so writing it out
 * (writeStudent, writeDraft) needs no copy.
 */

/** What every PTP model feeds its slots: the auxiliary embedding of u and (C-PTP) the start vector. */
export interface TrainableSlots {
  aux: AuxEmbeddingConfig;
  tensors: { weight?: Tensor; bias?: Tensor; anchors?: Tensor };
  start?: Tensor;
  /** How a window's first slot is fed (hybrid: it adds its last known token's embedding; query: it is the teacher's own row). */
  input: SlotInputKind;
}

/** The gated-LoRA student: LoRA A and B of every linear layer, its slot inputs and its extra blocks; the teacher stays frozen. */
export interface TrainableStudent {
  student: Student;
  params: Param[];
  lora: LoraTensors;
  slots: TrainableSlots;
  /** The extra blocks' weights (spec/ptp.md 2.4), when the student has any. */
  extra?: LayerTensors[];
  /** The pick-feedback table [vocab, dim] (spec/ptp.md 2.5), when the student has pick feedback. */
  feedback?: Tensor;
}

/** The standalone draft model: every weight of its own transformer, plus its slot inputs. */
export interface TrainableDraft {
  draft: Draft;
  params: Param[];
  weights: GraphWeights;
  slots: TrainableSlots;
}

function slotParams(params: Param[], config: AuxFields, w: AuxEmbeddingWeights, start: Float32Array | undefined, dim: number): TrainableSlots {
  const aux = config.aux;
  const p = (name: string, data: Float32Array, shape: number[]) => {
    const param = makeParam(name, shape, data, false);
    params.push(param);
    return Tensor.param(param);
  };
  const tensors: TrainableSlots["tensors"] = {};
  if (aux.kind === "anchors") tensors.anchors = p("aux.anchors", w.anchors!, [3, dim]);
  else {
    tensors.weight = p("aux.weight", w.weight!, [dim, auxFeatureCount(aux)]);
    tensors.bias = p("aux.bias", w.bias!, [dim]);
  }
  return { aux, tensors, start: hasStartVector(config) ? p("start", start!, [dim]) : undefined, input: slotInputOf(config) };
}

export function trainableStudent(student: Student, teacher: ModelConfig): TrainableStudent {
  const { config, weights } = student,
    params: Param[] = [];
  const r = config.rank;
  const layers = weights.layers.map(
    (l, i) =>
      Object.fromEntries(
        LINEAR_NAMES.map((n) => {
          const [out, inp] = linearShape(teacher, n);
          const A = makeParam(`layers.${i}.${n}.lora_A`, [r, inp], l[n].A, true),
            B = makeParam(`layers.${i}.${n}.lora_B`, [out, r], l[n].B, true);
          params.push(A, B);
          return [n, { A: Tensor.param(A), B: Tensor.param(B) }];
        }),
      ) as Record<LinearName, { A: Tensor; B: Tensor }>,
  );
  const slots = slotParams(params, config, weights.aux, weights.start, teacher.dim);
  // Named as in the adapter file (extra.{e}.wq, ...), so a training checkpoint names them alike.
  const extra = (weights.extra ?? []).map((block, e) => layerParams(params, teacher, block, `extra.${e}`));
  if (extra.length !== (config.extraBlocks ?? 0)) throw new RangeError(`trainableStudent: the config has ${config.extraBlocks ?? 0} extra blocks but the weights have ${extra.length}`);
  let feedback: Tensor | undefined;
  if (config.pickFeedback) {
    if (!(weights.feedback instanceof Float32Array && weights.feedback.length === teacher.vocabSize * teacher.dim)) throw new RangeError(`trainableStudent: the pick-feedback table must hold ${teacher.vocabSize} x ${teacher.dim} values`);
    const param = makeParam("feedback", [teacher.vocabSize, teacher.dim], weights.feedback, false);
    params.push(param);
    feedback = Tensor.param(param);
  }
  return { student, params, lora: { layers, scale: config.alpha / config.rank }, slots, ...(extra.length > 0 ? { extra } : {}), ...(feedback ? { feedback } : {}) };
}

export function trainableDraft(draft: Draft): TrainableDraft {
  const { config, weights } = draft;
  const { params, weights: graph } = trainableWeights({ config: config.model, weights: weights.model });
  const slots = slotParams(params, config, weights.aux, weights.start, config.model.dim);
  return { draft, params, weights: graph, slots };
}
