import { useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import type { ResidentChoice } from "../bindings";
import { Button, Card, Check, DateField, Message, SelectField, TextArea, TextField, yearsAhead } from "../components/ui";
import { fromLocalInput } from "../format";
import { useAction, useData, useShared } from "../store";

const WEEK = 7 * 24 * 3600 * 1000;

/** Ask for help: for oneself, or by staff or family on behalf of a resident. */
export function RequestHelp() {
  const { t, i18n } = useTranslation();
  const { sync } = useShared();
  const [query, setQuery] = useState("");
  const [who, setWho] = useState<ResidentChoice | null>(null);
  const [service, setService] = useState("");
  const [urgent, setUrgent] = useState(false);
  const [asap, setAsap] = useState(true);
  const [start, setStart] = useState("");
  const [minutes, setMinutes] = useState(60);
  const [volunteers, setVolunteers] = useState(1);
  const [weeks, setWeeks] = useState(1);
  const [description, setDescription] = useState("");
  const [placeHint, setPlaceHint] = useState("");
  const { data: people } = useData(() => call(commands.findResidents(query)), [query]);
  const { data: services } = useData(() => call(commands.services()), []);
  const { run, busy, error, done, setError } = useAction();
  const offline = !!sync?.enrolled && !sync.online;
  const en = i18n.language === "en";

  const fields = new Map<string, { name: string; items: { code: string; name: string }[] }>();
  for (const s of services ?? []) {
    const f = fields.get(s.field_code) ?? { name: en ? s.field_en : s.field_zh, items: [] };
    f.items.push({ code: s.code, name: en ? s.name_en : s.name_zh });
    fields.set(s.field_code, f);
  }

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!who) return setError(t("request.chooseWho"));
    if (!service) return setError(t("request.chooseService"));
    const startMs = asap ? null : fromLocalInput(start);
    if (!asap && startMs === null) return setError(t("request.chooseTime"));
    const visits = startMs !== null && weeks > 1 ? Array.from({ length: weeks }, (_, i) => startMs + i * WEEK) : [];
    const ok = await run(
      () =>
        call(
          commands.postOrder({
            beneficiary_id: who.id,
            service_code: service,
            description,
            urgent,
            place_hint: placeHint || who.community,
            window_start: startMs,
            window_end: startMs === null ? null : startMs + minutes * 60_000 + 2 * 3600_000,
            expected_minutes: minutes,
            volunteers_needed: volunteers,
            visits,
          }),
        ),
      offline ? t("request.savedOffline") : t("request.sent"),
    );
    if (ok) {
      setDescription("");
      setUrgent(false);
    }
  };

  return (
    <div className="screen">
      <h2>{t("request.title")}</h2>
      {offline && (
        <div className="msg msg-warn" role="note" data-testid="offline-note">
          {t("request.offline")}
        </div>
      )}
      <form onSubmit={submit} className="form">
        <Card title={t("request.who")}>
          <TextField label={t("request.findResident")} hint={t("request.findHint")} type="search" value={query} onChange={(e) => setQuery(e.target.value)} />
          <fieldset className="choices">
            <legend>{t("request.forWhom")}</legend>
            {(people ?? []).map((p) => (
              <label key={p.id} className="choice">
                <input type="radio" name="who" checked={who?.id === p.id} onChange={() => setWho(p)} />
                <span>
                  {p.name} <span className="muted">({t(`request.because.${p.because}`)} · {p.community} · {p.phone})</span>
                </span>
              </label>
            ))}
            {people && people.length === 0 && <p>{t("request.noneFound")}</p>}
          </fieldset>
        </Card>
        <Card title={t("request.what")}>
          <SelectField label={t("request.service")} value={service} onChange={(e) => setService(e.target.value)} required>
            <option value="">{t("request.pickService")}</option>
            {[...fields.entries()].map(([code, f]) => (
              <optgroup key={code} label={f.name}>
                {f.items.map((s) => (
                  <option key={s.code} value={s.code}>{s.name}</option>
                ))}
              </optgroup>
            ))}
          </SelectField>
          <TextArea label={t("request.description")} hint={t("request.descriptionHint")} value={description} onChange={(e) => setDescription(e.target.value)} required />
          <TextField label={t("request.placeHint")} hint={t("request.placeHintHint")} value={placeHint} onChange={(e) => setPlaceHint(e.target.value)} />
          <Check label={t("request.urgent")} checked={urgent} onChange={(e) => setUrgent(e.target.checked)} />
        </Card>
        <Card title={t("request.when")}>
          <fieldset className="choices">
            <legend>{t("request.whenLegend")}</legend>
            <label className="choice">
              <input type="radio" name="when" checked={asap} onChange={() => setAsap(true)} /> <span>{t("request.asap")}</span>
            </label>
            <label className="choice">
              <input type="radio" name="when" checked={!asap} onChange={() => setAsap(false)} /> <span>{t("request.at")}</span>
            </label>
          </fieldset>
          {!asap && <DateField label={t("request.start")} time value={start} onChange={setStart} years={yearsAhead(1)} />}
          {!asap && (
            <SelectField label={t("request.repeat")} value={weeks} onChange={(e) => setWeeks(Number(e.target.value))}>
              <option value={1}>{t("request.once")}</option>
              {[2, 3, 4, 6, 8, 12].map((n) => (
                <option key={n} value={n}>{t("request.weekly", { count: n })}</option>
              ))}
            </SelectField>
          )}
          <SelectField label={t("request.minutes")} value={minutes} onChange={(e) => setMinutes(Number(e.target.value))}>
            {[30, 60, 90, 120, 180].map((m) => (
              <option key={m} value={m}>{t("request.minutesN", { count: m })}</option>
            ))}
          </SelectField>
          <SelectField label={t("request.volunteers")} value={volunteers} onChange={(e) => setVolunteers(Number(e.target.value))}>
            {[1, 2, 3, 4].map((n) => (
              <option key={n} value={n}>{n}</option>
            ))}
          </SelectField>
        </Card>
        <Message error={error} done={done} />
        <div className="actions">
          <Button type="submit" disabled={busy}>{t("request.submit")}</Button>
        </div>
      </form>
    </div>
  );
}
