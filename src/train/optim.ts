/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter), and global
 * gradient-norm clipping.
 *
 * The moments are Float32Arrays, one pair per Param. Each element update is
 * computed in float64 from float32 inputs and rounded once on store; the
 * loops run over params in array order and elements in index order, so the
 * result depends only on the inputs: same inputs, same bytes.
 */
import { describeValue } from "../util/checks.js";
import { checkOptionKeys } from "../util/options.js";
import { checkParams, type Param } from "./param.js";

export interface AdamWOptions {
  /** Learning rate; usually overwritten every step from the schedule. Default 0. */
  lr?: number;
  beta1?: number; // default 0.9
  beta2?: number; // default 0.999
  eps?: number; // default 1e-8
  /** Decoupled weight decay, applied only to params with decay = true. Default 0. */
  weightDecay?: number;
}

export interface AdamWHyperparameters {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Optimizer state for checkpoints: the step count and the moments by param name. */
export interface AdamWState {
  /** Number of updates taken so far (t of the bias corrections). */
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export function validateAdamW(h: AdamWHyperparameters): void {
  const check = (name: string, value: number, ok: boolean, want: string): void => {
    if (typeof value !== "number" || !ok) throw new RangeError(`AdamW: ${name} must be ${want}, got ${value}`);
  };
  check("lr", h.lr, Number.isFinite(h.lr) && h.lr >= 0, "a finite number >= 0");
  check("beta1", h.beta1, h.beta1 >= 0 && h.beta1 < 1, "in [0, 1)");
  check("beta2", h.beta2, h.beta2 >= 0 && h.beta2 < 1, "in [0, 1)");
  check("eps", h.eps, Number.isFinite(h.eps) && h.eps > 0, "a finite number > 0");
  check("weightDecay", h.weightDecay, Number.isFinite(h.weightDecay) && h.weightDecay >= 0, "a finite number >= 0");
}

/** The keys of AdamWOptions (and of the hyperparameters). */
const ADAMW_OPTIONS: readonly (keyof AdamWOptions)[] = ["lr", "beta1", "beta2", "eps", "weightDecay"];

export class AdamW {
  readonly params: readonly Param[];
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Updates taken so far. */
  t = 0;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];

  constructor(params: readonly Param[], options: AdamWOptions = {}) {
    checkParams(params, "AdamW");
    const names = new Set<string>();
    for (const p of params) {
      // Checkpoints key the moments by name, so names must be unique.
      if (names.has(p.name)) throw new RangeError(`AdamW: two params are named ${JSON.stringify(p.name)}`);
      names.add(p.name);
    }
    // A misspelt key (learningRate) would leave lr at 0: a step that changes nothing.
    checkOptionKeys(options, "AdamW", ADAMW_OPTIONS);
    this.params = params.slice();
    this.lr = options.lr ?? 0;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    validateAdamW(this.hyperparameters());
    this.m = this.params.map((p) => new Float32Array(p.data.length));
    this.v = this.params.map((p) => new Float32Array(p.data.length));
  }

  hyperparameters(): AdamWHyperparameters {
    return { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay };
  }

  /** Sets the hyperparameters given (validated together). */
  setHyperparameters(h: Partial<AdamWHyperparameters>): void {
    checkOptionKeys(h, "AdamW.setHyperparameters", ADAMW_OPTIONS, "hyperparameters");
    const next = { ...this.hyperparameters(), ...h };
    validateAdamW(next);
    ({ lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay } = next);
  }

  /** One update from the params' current grads; `lr`, when given, replaces this.lr first. */
  step(lr?: number): void {
    if (lr !== undefined) this.setHyperparameters({ lr });
    const t = ++this.t;
    const { beta1: b1, beta2: b2, eps } = this;
    const bc1 = 1 - b1 ** t;
    const bc2 = 1 - b2 ** t;
    const rate = this.lr;
    for (let k = 0; k < this.params.length; k++) {
      const { data, grad, decay } = this.params[k];
      const m = this.m[k];
      const v = this.v[k];
      const wd = decay ? this.weightDecay : 0;
      for (let i = 0; i < data.length; i++) {
        const g = grad[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        // Read the moments back as stored (float32), so a resumed run sees exactly what it would have.
        const mhat = m[i] / bc1;
        const vhat = v[i] / bc2;
        const p = data[i];
        data[i] = p - rate * (mhat / (Math.sqrt(vhat) + eps) + wd * p);
      }
    }
  }

  /** A copy of the state (step count and moments by param name). */
  exportState(): AdamWState {
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    this.params.forEach((p, k) => {
      m.set(p.name, this.m[k].slice());
      v.set(p.name, this.v[k].slice());
    });
    return { step: this.t, m, v };
  }

  /** Replaces the state by a copy of `state`, which must cover exactly these params. Validates before writing. */
  importState(state: AdamWState): void {
    if (!Number.isSafeInteger(state.step) || state.step < 0) throw new RangeError(`AdamW state: step must be an integer >= 0, got ${state.step}`);
    for (const [which, moments] of [
      ["m", state.m],
      ["v", state.v],
    ] as const) {
      for (const p of this.params) {
        const a = moments.get(p.name);
        if (a === undefined) throw new RangeError(`AdamW state: no ${which} for param ${JSON.stringify(p.name)}`);
        if (a.length !== p.data.length) {
          throw new RangeError(`AdamW state: ${which} of param ${JSON.stringify(p.name)} has ${a.length} values, expected ${p.data.length}`);
        }
      }
      if (moments.size !== this.params.length) {
        const extra = [...moments.keys()].find((name) => !this.params.some((p) => p.name === name));
        throw new RangeError(`AdamW state: ${which} for ${JSON.stringify(extra)}, which is not a param of this optimizer`);
      }
    }
    this.t = state.step;
    this.params.forEach((p, k) => {
      this.m[k].set(state.m.get(p.name)!);
      this.v[k].set(state.v.get(p.name)!);
    });
  }
}

/** Global L2 norm of all grads, summed in float64 in param then element order. */
export function gradNorm(params: readonly Param[]): number {
  checkParams(params, "gradNorm");
  let sum = 0;
  for (const p of params) {
    const g = p.grad;
    for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  }
  return Math.sqrt(sum);
}

/**
 * Scales all grads by maxNorm / norm when the global norm exceeds maxNorm.
 * Returns the norm before clipping. A non-finite norm (a NaN or infinite
 * grad) leaves the grads untouched: the caller should check the result
 * with Number.isFinite and skip the step.
 */
export function clipGradNorm(params: readonly Param[], maxNorm: number): number {
  checkParams(params, "clipGradNorm");
  if (typeof maxNorm !== "number" || !Number.isFinite(maxNorm) || maxNorm <= 0) throw new RangeError(`clipGradNorm: maxNorm must be a finite number > 0, got ${describeValue(maxNorm)}`);
  const norm = gradNorm(params);
  if (Number.isFinite(norm) && norm > maxNorm) {
    const scale = maxNorm / norm;
    for (const p of params) {
      const g = p.grad;
      for (let i = 0; i < g.length; i++) g[i] *= scale;
    }
  }
  return norm;
}
