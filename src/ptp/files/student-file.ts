/**
 * One entry point for `--student PATH`: a student adapter file
 * (safetensors, adapter-file.ts) or a PEFT folder (peft.ts).
 */
import { checkPath, FileFormatError } from "../../io/errors.js";
import { isDirectory } from "../../io/hf-checkpoint.js";
import type { Checkpoint } from "../../model/weights.js";
import { readStudent } from "./adapter-file.js";
import { isPeftFolder, PEFT_CONFIG, readPeftStudent } from "./peft.js";
import type { Student } from "../student-weights.js";

/**
 * Reads a student: a folder as PEFT (the teacher fills in the shape and
 * checksum of a reference-code folder without PTP settings), a file as our
 * adapter format.
 */
export function loadStudent(path: string, teacher?: { checkpoint: Checkpoint; checksum: string }): Student {
  checkPath(path, "loadStudent");
  if (!isDirectory(path)) return readStudent(path);
  if (!isPeftFolder(path)) throw new FileFormatError(path, `is a folder without ${PEFT_CONFIG} (expected a student adapter file or a PEFT folder)`);
  return readPeftStudent(path, { teacher });
}
