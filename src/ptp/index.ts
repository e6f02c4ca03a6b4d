/** `ptp-ts/ptp`: PTP students, draft models, their files (ours and PEFT) and the decoders (see spec/ptp.md). */
export { PtpModel } from "./ptp-model.js";
export { embedAux, auxFeatures } from "./auxiliary.js";
export { readStudent, writeStudent, parseStudent, serializeStudent, checkStudentMatchesTeacher, teacherShapeOf } from "./files/adapter-file.js";
export { randomStudent } from "./init.js";
export { studentToPeft, writePeftStudent, readPeftStudent, isPeftFolder, PEFT_CONFIG, PEFT_WEIGHTS, type PeftPtpSettings, type ReadPeftOptions } from "./files/peft.js";
export { loadStudent } from "./files/student-file.js";
export { runPtpExactness, type PtpExactnessOptions } from "./exactness.js";
export { teacherChecksum } from "./files/teacher-checksum.js";
export type { Student, StudentConfig, StudentWeights, Variant, AuxKind, AuxEmbeddingConfig } from "./student-weights.js";
export { UStream } from "../sampling/ustream.js";
export { DraftModel, type Draft, type DraftConfig, type DraftWeights } from "./draft-model.js";
export { readDraft, writeDraft, parseDraft, serializeDraft, checkDraftMatchesTeacher } from "./files/draft-file.js";
export { randomDraft } from "./init.js";
export { decodeAR, type ArOptions, type DecodeResult, type DecodeStats } from "./decode/decode-ar.js";
export { decode, decodeWith, makeDecoder, DECODERS, type DecodeOptions, type DecoderName, type PtpResult, type PtpStats } from "./decode/run.js";
export type { Decoder } from "./decode/decoder.js";
