// Hours, dates and times as people read them.
export function hours(minutes: number, lang: string): string {
  const sign = minutes < 0 ? "-" : "";
  const m = Math.abs(minutes);
  const h = Math.floor(m / 60);
  const r = m % 60;
  if (lang === "en") {
    if (h === 0) return `${sign}${r} min`;
    return r === 0 ? `${sign}${h} h` : `${sign}${h} h ${r} min`;
  }
  if (h === 0) return `${sign}${r}分钟`;
  return r === 0 ? `${sign}${h}小时` : `${sign}${h}小时${r}分钟`;
}

/** 7 → "07": the two digits of a month, day, hour or minute. */
export const pad = (n: number) => String(n).padStart(2, "0");

export function dateTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function date(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** A `YYYY-MM-DDTHH:MM` value (a `DateField` with `time`) to epoch milliseconds, local time. */
export function fromLocalInput(v: string): number | null {
  if (!v) return null;
  const t = new Date(v).getTime();
  return Number.isNaN(t) ? null : t;
}
