import { useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import { Badge, Button, Card, Message, SelectField, TextArea, TextField } from "../components/ui";
import { dateTime, hours } from "../format";
import { useAction, useData } from "../store";

/** My orders (as volunteer, beneficiary or the one who asked): check in, out, confirm, rate. */
export function MyOrders() {
  const { t } = useTranslation();
  const { data: orders, error } = useData(() => call(commands.myOrders()), []);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <div className="screen">
      <h2>{t("mine.title")}</h2>
      <Message error={error} />
      {orders && orders.length === 0 && <p className="empty">{t("mine.empty")}</p>}
      <div className="columns">
        <ul className="list" aria-label={t("mine.title")}>
          {orders?.map((o) => (
            <li key={o.id}>
              <button type="button" className={`row-button ${open === o.id ? "active" : ""}`} aria-pressed={open === o.id} onClick={() => setOpen(o.id)}>
                <strong lang="zh-CN">{o.service_zh}</strong> · {o.beneficiary_name} · {o.place_hint} · {t(`status.${o.status}`)}
                {o.urgent && <Badge tone="urgent">{t("board.urgent")}</Badge>}
                <span className="muted"> · {dateTime(o.updated_at)}</span>
              </button>
            </li>
          ))}
        </ul>
        {open && <OrderPanel key={open} orderId={open} />}
      </div>
    </div>
  );
}

export function OrderPanel({ orderId }: { orderId: string }) {
  const { t, i18n } = useTranslation();
  const { data: o, error: loadError } = useData(() => call(commands.orderDetail(orderId)), [orderId]);
  const { run, busy, error, done } = useAction();
  const [pin, setPin] = useState("");
  const [note, setNote] = useState("");
  const [reason, setReason] = useState("");
  const [rating, setRating] = useState(5);
  const [comment, setComment] = useState("");
  if (loadError) return <Message error={loadError} />;
  if (!o) return null;
  const s = o.status;
  return (
    <Card title={`${i18n.language === "en" ? o.service_en : o.service_zh} · ${t(`status.${s}`)}`} className="panel">
      <dl className="facts">
        <dt>{t("order.for")}</dt>
        <dd>{o.beneficiary_name}</dd>
        <dt>{t("order.postedBy")}</dt>
        <dd>{o.posted_by_name}</dd>
        <dt>{t("order.place")}</dt>
        <dd>{o.address ?? o.place_hint}</dd>
        {o.beneficiary_phone && (<><dt>{t("order.phone")}</dt><dd>{o.beneficiary_phone}</dd></>)}
        <dt>{t("order.expected")}</dt>
        <dd>{hours(o.expected_minutes, i18n.language)}</dd>
        <dt>{t("order.volunteers")}</dt>
        <dd>{o.volunteers.length ? o.volunteers.join("、") : "—"}</dd>
        <dt>{t("order.visits")}</dt>
        <dd>{o.visits_done} / {o.visits_total}</dd>
        {o.description && (<><dt>{t("order.description")}</dt><dd>{o.description}</dd></>)}
      </dl>
      <Message error={error} done={done} />
      {(s === "accepted" || s === "in_service") && (
        <div className="actions">
          <Button disabled={busy} onClick={() => run(() => call(commands.checkIn(o.id)), t("order.checkedIn"))}>{t("order.checkIn")}</Button>
          <Button variant="secondary" disabled={busy} onClick={() => run(() => call(commands.releaseOrder(o.id)), t("order.released"))}>{t("order.release")}</Button>
        </div>
      )}
      {s === "in_service" && (
        <div className="form">
          <TextArea label={t("order.note")} value={note} onChange={(e) => setNote(e.target.value)} />
          <Button disabled={busy} onClick={() => run(() => call(commands.checkOut(o.id, note || null)), t("order.checkedOut"))}>{t("order.checkOut")}</Button>
        </div>
      )}
      {s === "awaiting_confirmation" && (
        <div className="form">
          <h3>{t("order.confirmTitle")}</h3>
          <TextField label={t("order.residentPin")} hint={t("order.residentPinHint")} type="password" inputMode="numeric" maxLength={6} value={pin} onChange={(e) => setPin(e.target.value.replace(/\D/g, ""))} />
          <div className="actions">
            <Button disabled={busy || pin.length < 4} onClick={() => run(() => call(commands.confirmVisit(o.id, "pin", pin)), t("order.confirmed")).then(() => setPin(""))}>{t("order.confirmPin")}</Button>
            <Button variant="secondary" disabled={busy} onClick={() => run(() => call(commands.confirmVisit(o.id, "app", null)), t("order.confirmed"))}>{t("order.confirmApp")}</Button>
          </div>
          <TextArea label={t("order.disputeReason")} value={reason} onChange={(e) => setReason(e.target.value)} />
          <Button variant="danger" disabled={busy || !reason.trim()} onClick={() => run(() => call(commands.disputeVisit(o.id, reason)), t("order.disputed"))}>{t("order.dispute")}</Button>
        </div>
      )}
      {s === "completed" && (
        <div className="form">
          <h3>{t("order.rateTitle")}</h3>
          <SelectField label={t("order.rating")} value={rating} onChange={(e) => setRating(Number(e.target.value))}>
            {[5, 4, 3, 2, 1].map((n) => (
              <option key={n} value={n}>{t("order.stars", { count: n })}</option>
            ))}
          </SelectField>
          <TextArea label={t("order.comment")} value={comment} onChange={(e) => setComment(e.target.value)} />
          <Button disabled={busy} onClick={() => run(() => call(commands.rateService(o.id, rating, comment)), t("order.rated"))}>{t("order.rate")}</Button>
        </div>
      )}
      {(s === "open" || s === "accepted") && (
        <div className="form">
          <TextField label={t("order.cancelReason")} value={reason} onChange={(e) => setReason(e.target.value)} />
          <Button variant="danger" disabled={busy || !reason.trim()} onClick={() => run(() => call(commands.cancelOrder(o.id, reason)), t("order.cancelled"))}>{t("order.cancel")}</Button>
        </div>
      )}
    </Card>
  );
}
