// Calls into the Rust core through the generated bindings, with errors as exceptions.
import { commands, events } from "./bindings";
import type { UiError_Serialize } from "./bindings";

export { commands, events };
export type UiError = UiError_Serialize;

export class AppError extends Error {
  constructor(public readonly error: UiError) {
    super(error.message_en);
  }
}

type Answer<T> = { status: "ok"; data: T } | { status: "error"; error: UiError };

/** Unwrap a command's answer: the data, or an AppError with the core's message. */
export async function call<T>(p: Promise<Answer<T>>): Promise<T> {
  const r = await p;
  if (r.status === "ok") return r.data;
  throw new AppError(r.error);
}

/** The message of an error in the UI's language. */
export function errorText(e: unknown, lang: string): string {
  if (e instanceof AppError) return lang === "en" ? e.error.message_en : e.error.message_zh;
  if (e && typeof e === "object" && "message_zh" in e) {
    const u = e as UiError;
    return lang === "en" ? u.message_en : u.message_zh;
  }
  return String(e instanceof Error ? e.message : e);
}

export function isSignedOut(e: unknown): boolean {
  return e instanceof AppError && e.error.code === "sign_in_required";
}
