// The app's accessible building blocks: native elements with visible labels, large targets,
// high-contrast colours and a visible focus ring (see styles.css). Nothing here hides meaning
// in colour alone.
import { useEffect, useId, useRef, useState } from "react";
import type { ButtonHTMLAttributes, InputHTMLAttributes, ReactNode, Ref, SelectHTMLAttributes, TextareaHTMLAttributes } from "react";

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

export function TextField({ label, hint, ...rest }: InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: string; ref?: Ref<HTMLInputElement> }) {
  return <Field label={label} hint={hint}>{(id, d) => <input id={id} aria-describedby={d} {...rest} />}</Field>;
}

export function TextArea({ label, hint, ...rest }: TextareaHTMLAttributes<HTMLTextAreaElement> & { label: string; hint?: string }) {
  return <Field label={label} hint={hint}>{(id, d) => <textarea id={id} aria-describedby={d} rows={3} {...rest} />}</Field>;
}

export function SelectField({ label, hint, children, ...rest }: SelectHTMLAttributes<HTMLSelectElement> & { label: string; hint?: string }) {
  return (
    <Field label={label} hint={hint}>
      {(id, d) => (
        <select id={id} aria-describedby={d} {...rest}>
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
