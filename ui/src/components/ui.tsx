// The app's accessible building blocks: native elements with visible labels, large targets,
// high-contrast colours and a visible focus ring (see styles.css). Nothing here hides meaning
// in colour alone.
import { useEffect, useId, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import { pad } from "../format";
import type { ButtonHTMLAttributes, ChangeEvent, FormEvent, InputHTMLAttributes, ReactNode, Ref, SelectHTMLAttributes, TextareaHTMLAttributes } from "react";

type Variant = "primary" | "secondary" | "danger";

export function Button({ variant = "primary", className = "", ...rest }: ButtonHTMLAttributes<HTMLButtonElement> & { variant?: Variant }) {
  return <button type="button" className={`btn btn-${variant} ${className}`} {...rest} />;
}

interface FieldProps {
  label: string;
  hint?: string;
  children: (id: string, describedBy: string | undefined) => ReactNode;
}

export function Field({ label, hint, children }: FieldProps) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children(id, hintId)}
      {hint && (
        <p className="hint" id={hintId}>
          {hint}
        </p>
      )}
    </div>
  );
}

type Control = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;

/**
 * The message a required field shows when a form is sent without it, in the app's language: the
 * web view's own ("Please fill out this field") follows the system's locale, not the language the
 * user chose. Set when the browser finds the field empty, cleared as soon as it changes.
 */
function useRequired<E extends Control>(required: boolean | undefined, kind: "fill" | "choose", onChange?: (e: ChangeEvent<E>) => void) {
  const { t } = useTranslation();
  if (!required) return { onChange };
  return {
    onInvalid: (e: FormEvent<E>) => e.currentTarget.setCustomValidity(t(`form.${kind}`)),
    onChange: (e: ChangeEvent<E>) => {
      e.currentTarget.setCustomValidity("");
      onChange?.(e);
    },
  };
}

export function TextField({ label, hint, onChange, ...rest }: InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: string; ref?: Ref<HTMLInputElement> }) {
  const checks = useRequired(rest.required, "fill", onChange);
  return <Field label={label} hint={hint}>{(id, d) => <input id={id} aria-describedby={d} {...rest} {...checks} />}</Field>;
}

/** The parts of a date (and time) as the lists hold them: "" for a part not chosen yet. */
interface DateParts {
  y: string;
  m: string;
  d: string;
  h: string;
  min: string;
}

const NONE: DateParts = { y: "", m: "", d: "", h: "", min: "" };

/** The number of days in a month (1-12) of a year: 29 for February of a leap year. */
export function daysInMonth(year: number, month: number): number {
  return new Date(year, month, 0).getDate();
}

/**
 * The days the chosen month has: 31 before a month is chosen, and 29 for February before the
 * year is (2000 was a leap year), so that a 29th chosen first is cleared only if the year then
 * chosen is not a leap year.
 */
const daysOf = (p: DateParts) => daysInMonth(Number(p.y || 2000), Number(p.m || 1));

/** `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` to its parts; anything else to no parts. */
export function dateParts(value: string): DateParts {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?$/.exec(value);
  if (!m) return NONE;
  const n = (v: string | undefined) => (v === undefined ? "" : String(Number(v)));
  return { y: m[1], m: n(m[2]), d: n(m[3]), h: n(m[4]), min: n(m[5]) };
}

/** The parts back to `YYYY-MM-DD` (or with `THH:MM`), or "" while any part is still to choose. */
export function joinDateParts(p: DateParts, time: boolean): string {
  if (!p.y || !p.m || !p.d || (time && (!p.h || !p.min))) return "";
  const date = `${p.y}-${pad(Number(p.m))}-${pad(Number(p.d))}`;
  return time ? `${date}T${pad(Number(p.h))}:${pad(Number(p.min))}` : date;
}

const range = (from: number, to: number, step = 1) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);

/** This year back to `first`, the latest first (years of birth). */
export const yearsDownTo = (first: number) => range(first, new Date().getFullYear()).reverse();
/** This year and the `n` years after it (dates to come). */
export const yearsAhead = (n: number) => range(0, n).map((i) => new Date().getFullYear() + i);

/**
 * A date, or a date and a time, chosen from lists: 年, 月, 日 (and 时, 分 on a 24-hour clock), in
 * that order whatever the computer's language settings. The browser's own date input is drawn in
 * the system's locale (on an English system WebKitGTK asks for month/day/year), and a day and month
 * typed the wrong way round would be a silent mistake about an elder. `value` is `YYYY-MM-DD` (or
 * `YYYY-MM-DDTHH:MM` with `time`) once every part is chosen, and "" until then. A day the chosen
 * month does not have (the 31st, say, after choosing April) is cleared, never moved to another day.
 */
export function DateField({
  label,
  hint,
  value,
  onChange,
  years,
  time = false,
  minuteStep = 5,
  required = false,
}: {
  label: string;
  hint?: string;
  value: string;
  onChange: (value: string) => void;
  years: number[];
  time?: boolean;
  minuteStep?: number;
  required?: boolean;
}) {
  const { t, i18n } = useTranslation();
  const checks = useRequired<HTMLSelectElement>(required, "choose");
  // 1941 年 2 月 8 日 in Chinese; Year 1941 Month 2 Day 8 in English.
  const unitFirst = i18n.language === "en";
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  const [parts, setParts] = useState(() => dateParts(value));
  const [seen, setSeen] = useState(value);
  if (value !== seen) {
    // Set from outside (a form cleared after sending, say): the lists follow it.
    setSeen(value);
    if (value !== joinDateParts(parts, time)) setParts(dateParts(value));
  }
  const set = (key: keyof DateParts, v: string) => {
    const next = { ...parts, [key]: v };
    if (Number(next.d) > daysOf(next)) next.d = "";
    setParts(next);
    const joined = joinDateParts(next, time);
    if (joined !== value) onChange(joined);
  };
  // A value set from outside but off the lists (a year outside them, a minute off the step)
  // stays choosable, in the list's order (years of birth run downwards).
  const withValue = (list: number[], v: string) => {
    if (!v || list.includes(Number(v))) return list;
    const down = list.length > 1 && list[0] > list[1];
    return [...list, Number(v)].sort((a, b) => (down ? b - a : a - b));
  };
  const lists: { key: keyof DateParts; options: number[]; show: (n: number) => string }[] = [
    { key: "y", options: withValue(years, parts.y), show: String },
    { key: "m", options: range(1, 12), show: String },
    { key: "d", options: range(1, daysOf(parts)), show: String },
    ...(time
      ? [
          { key: "h" as const, options: range(0, 23), show: pad },
          { key: "min" as const, options: withValue(range(0, 59, minuteStep), parts.min), show: pad },
        ]
      : []),
  ];
  return (
    <fieldset className="field date-field" aria-describedby={hintId}>
      <legend>{label}</legend>
      <div className="date-parts">
        {lists.map(({ key, options, show }) => (
          <span className="date-part" key={key}>
            {unitFirst && <label htmlFor={`${id}-${key}`}>{t(`date.${key}`)}</label>}
            <select id={`${id}-${key}`} value={parts[key]} required={required} onInvalid={checks.onInvalid} onChange={(e) => {
                checks.onChange?.(e);
                set(key, e.target.value);
              }}>
              <option value="">{t("date.choose")}</option>
              {options.map((n) => (
                <option key={n} value={String(n)}>
                  {show(n)}
                </option>
              ))}
            </select>
            {!unitFirst && <label htmlFor={`${id}-${key}`}>{t(`date.${key}`)}</label>}
          </span>
        ))}
      </div>
      {hint && (
        <p className="hint" id={hintId}>
          {hint}
        </p>
      )}
    </fieldset>
  );
}

export function TextArea({ label, hint, onChange, ...rest }: TextareaHTMLAttributes<HTMLTextAreaElement> & { label: string; hint?: string }) {
  const checks = useRequired(rest.required, "fill", onChange);
  return <Field label={label} hint={hint}>{(id, d) => <textarea id={id} aria-describedby={d} rows={3} {...rest} {...checks} />}</Field>;
}

export function SelectField({ label, hint, children, onChange, ...rest }: SelectHTMLAttributes<HTMLSelectElement> & { label: string; hint?: string }) {
  const checks = useRequired(rest.required, "choose", onChange);
  return (
    <Field label={label} hint={hint}>
      {(id, d) => (
        <select id={id} aria-describedby={d} {...rest} {...checks}>
          {children}
        </select>
      )}
    </Field>
  );
}

export function Check({ label, ...rest }: InputHTMLAttributes<HTMLInputElement> & { label: string }) {
  const id = useId();
  return (
    <div className="check">
      <input id={id} type="checkbox" {...rest} />
      <label htmlFor={id}>{label}</label>
    </div>
  );
}

/**
 * An error (role=alert, read out at once) or a confirmation (role=status). The status region is
 * always there, empty until there is something to say: screen readers announce a change inside a
 * live region they already know, and often miss a region that appears with its text.
 */
export function Message({ error, done }: { error?: string | null; done?: string | null }) {
  return (
    <>
      {error && (
        <div className="msg msg-error" role="alert">
          <span aria-hidden="true">⚠ </span>
          {error}
        </div>
      )}
      <div role="status" className="msg-region">
        {done && (
          <div className="msg msg-ok">
            <span aria-hidden="true">✔ </span>
            {done}
          </div>
        )}
      </div>
    </>
  );
}

export function Loading({ text }: { text: string }) {
  return (
    <p className="loading" role="status">
      {text}
    </p>
  );
}

export function Card({ title, children, className = "", headingLevel = 2 }: { title?: string; children: ReactNode; className?: string; headingLevel?: 2 | 3 }) {
  const H = headingLevel === 2 ? "h2" : "h3";
  return (
    <section className={`card ${className}`} aria-label={title}>
      {title && <H>{title}</H>}
      {children}
    </section>
  );
}

export function Stat({ label, value, note }: { label: string; value: string; note?: string }) {
  return (
    <div className="stat">
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
      {note && <div className="stat-note">{note}</div>}
    </div>
  );
}

/** A horizontal bar chart that is also a readable list: every bar has its label and value. */
export function BarChart({ title, rows, format }: { title: string; rows: { label: string; value: number }[]; format: (v: number) => string }) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <ul>
        {rows.map((r) => (
          <li key={r.label}>
            <span className="chart-label">{r.label}</span>
            <span className="chart-track" aria-hidden="true">
              <span className="chart-bar" style={{ width: `${Math.round((r.value / max) * 100)}%` }} />
            </span>
            <span className="chart-value">{format(r.value)}</span>
          </li>
        ))}
      </ul>
    </figure>
  );
}

/**
 * A data table that may be wider than the screen at a large text size: it scrolls sideways on its
 * own (the page does not), and then it is a labelled region that takes the keyboard focus, so
 * that it can be scrolled with the arrow keys.
 */
export function TableScroll({ label, children }: { label: string; children: ReactNode }) {
  const ref = useRef<HTMLDivElement>(null);
  const [scrolls, setScrolls] = useState(false);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => setScrolls(el.scrollWidth > el.clientWidth + 1);
    measure();
    if (typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    if (el.firstElementChild) ro.observe(el.firstElementChild);
    return () => ro.disconnect();
  }, []);
  return (
    <div ref={ref} className="table-scroll" {...(scrolls ? { tabIndex: 0, role: "region", "aria-label": label } : {})}>
      {children}
    </div>
  );
}

export function Badge({ tone = "neutral", children }: { tone?: "neutral" | "urgent" | "ok" | "warn"; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}
