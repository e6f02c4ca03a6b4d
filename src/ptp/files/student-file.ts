/**
 * One entry point for `--student PATH`: a student adapter file
 * (safetensors, adapter-file.ts) or a PEFT folder (peft.ts).
 */
import { checkPath, FileFormatError } from "../../io/errors.js";
import { fileKindOf, type FileKind } from "../../io/file-kind.js";
import { isDirectory } from "../../io/hf-checkpoint.js";
import type { Checkpoint } from "../../model/weights.js";
import { checkStudentMatchesTeacher, readStudent } from "./adapter-file.js";
import { isPeftFolder, PEFT_CONFIG, readPeftStudent } from "./peft.js";
import { checkTeacherArgument, type TeacherIdentity } from "./ptp-file-parts.js";
import type { Student } from "../student-weights.js";

/**
 * Reads a student: a folder as PEFT (the teacher fills in the shape and
 * checksum of a reference-code folder without PTP settings), a file as our
 * adapter format. With a teacher, the student must have been made for it:
 * its shape and its checksum (checkStudentMatchesTeacher, naming `path`).
 */
export function loadStudent(path: string, teacher?: TeacherIdentity | { checkpoint: Checkpoint; checksum: string }): Student {
  checkPath(path, "loadStudent");
  const identity = checkTeacherArgument(teacher, "loadStudent");
  const student = readEither(path, identity);
  if (identity !== undefined) checkStudentMatchesTeacher(student, identity, identity.checksum, path);
  return student;
}

function readEither(path: string, teacher: TeacherIdentity | undefined): Student {
  if (!isDirectory(path)) {
    try {
      return readStudent(path);
    } catch (err) {
      // A file of another kind (the teacher, a dataset) fails as "not safetensors": say what it is instead.
      const kind = err instanceof FileFormatError ? otherKind(path) : undefined;
      if (kind !== undefined) throw new FileFormatError(path, `is ${kind}, not a student (expected a student adapter file or a PEFT folder)`);
      throw err;
    }
  }
  if (!isPeftFolder(path)) throw new FileFormatError(path, `is a folder without ${PEFT_CONFIG} (expected a student adapter file or a PEFT folder)`);
  return readPeftStudent(path, { teacher });
}

/** What a file that is not a student is, where it is one of the project's other kinds (a safetensors file's own error says which it is). */
function otherKind(path: string): FileKind | undefined {
  const kind = fileKindOf(path);
  return kind === "a safetensors file (a PTP student adapter, draft model or training checkpoint)" ? undefined : kind;
}
