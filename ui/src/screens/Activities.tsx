import { useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import { Button, Card, Check, DateField, Message, TextArea, TextField, yearsAhead } from "../components/ui";
import { dateTime, fromLocalInput, hours } from "../format";
import { useAction, useData, useShared } from "../store";

/** Activities: create (staff), sign up, take attendance (staff). */
export function Activities() {
  const { t, i18n } = useTranslation();
  const { me } = useShared();
  const { data: items, error: loadError } = useData(() => call(commands.activities(null)), []);
  const { run, busy, error, done } = useAction();
  const [open, setOpen] = useState<string | null>(null);
  return (
    <div className="screen">
      <h2>{t("activities.title")}</h2>
      <Message error={error ?? loadError} done={done} />
      <div className="columns">
        <ul className="list" aria-label={t("activities.title")}>
          {items?.map((a) => (
            <li key={a.id} className="item">
              <h3 id={`activity-${a.id}`}>{a.title}</h3>
              <p>
                {dateTime(a.starts_at)} · {t("activities.credit", { hours: hours(a.credit_minutes, i18n.language) })} · {t("activities.places", { taken: a.signed_up, capacity: a.capacity })}
              </p>
              {a.description && <p>{a.description}</p>}
              <div className="actions">
                {a.i_signed_up ? (
                  <span className="muted">{t("activities.signedUp")}</span>
                ) : (
                  <Button disabled={busy || !me} aria-describedby={`activity-${a.id}`} onClick={() => run(() => call(commands.signUpActivity(a.id, me?.id ?? "")), t("activities.signUpDone"))}>{t("activities.signUp")}</Button>
                )}
                {me?.is_staff && (
                  <Button variant="secondary" aria-describedby={`activity-${a.id}`} aria-pressed={open === a.id} onClick={() => setOpen(a.id)}>{t("activities.attendance")}</Button>
                )}
              </div>
            </li>
          ))}
          {items && items.length === 0 && <li className="empty">{t("activities.empty")}</li>}
        </ul>
        <div>
          {me?.is_staff && open && <Attendance key={open} activityId={open} title={items?.find((a) => a.id === open)?.title ?? ""} />}
          {me?.is_staff && <Create community={me.home_community_id} />}
        </div>
      </div>
    </div>
  );
}

function Attendance({ activityId, title }: { activityId: string; title: string }) {
  const { t } = useTranslation();
  const { data: people, error: loadError } = useData(() => call(commands.activitySignups(activityId)), [activityId]);
  const { run, busy, error, done } = useAction();
  const [present, setPresent] = useState<string[]>([]);
  return (
    <Card title={title ? `${t("activities.attendance")} · ${title}` : t("activities.attendance")}>
      <Message error={error ?? loadError} done={done} />
      <fieldset className="choices">
        <legend>{t("activities.whoCame")}</legend>
        {people?.map((p) => (
          <Check
            key={p.member_id}
            label={p.attended ? `${p.name}（${t("activities.recorded")}）` : p.name}
            disabled={p.attended}
            checked={p.attended || present.includes(p.member_id)}
            onChange={(e) => setPresent(e.target.checked ? [...present, p.member_id] : present.filter((x) => x !== p.member_id))}
          />
        ))}
      </fieldset>
      <Button disabled={busy || present.length === 0} onClick={() => run(() => call(commands.recordAttendance(activityId, present)), t("activities.attendanceDone")).then(() => setPresent([]))}>{t("activities.record")}</Button>
    </Card>
  );
}

function Create({ community }: { community: string }) {
  const { t } = useTranslation();
  const { run, busy, error, done } = useAction();
  const [title, setTitle] = useState("");
  const [description, setDescription] = useState("");
  const [start, setStart] = useState("");
  const [credit, setCredit] = useState("60");
  const [capacity, setCapacity] = useState("20");
  return (
    <Card title={t("activities.create")}>
      <form
        className="form"
        onSubmit={(e) => {
          e.preventDefault();
          run(
            () =>
              call(
                commands.createActivity({
                  activity_id: "",
                  community_id: community,
                  title,
                  description,
                  field_code: null,
                  starts_at: fromLocalInput(start) ?? 0,
                  credit_minutes: Number(credit) || 0,
                  capacity: Number(capacity) || 0,
                }),
              ),
            t("activities.created"),
          );
        }}
      >
        <TextField label={t("activities.name")} value={title} onChange={(e) => setTitle(e.target.value)} required />
        <TextArea label={t("activities.description")} value={description} onChange={(e) => setDescription(e.target.value)} />
        <DateField label={t("activities.start")} time value={start} onChange={setStart} years={yearsAhead(1)} required />
        <TextField label={t("activities.creditMinutes")} inputMode="numeric" value={credit} onChange={(e) => setCredit(e.target.value.replace(/\D/g, ""))} />
        <TextField label={t("activities.capacity")} inputMode="numeric" value={capacity} onChange={(e) => setCapacity(e.target.value.replace(/\D/g, ""))} />
        <Message error={error} done={done} />
        <Button type="submit" disabled={busy}>{t("activities.createButton")}</Button>
      </form>
    </Card>
  );
}
