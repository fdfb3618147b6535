import { useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import { Badge, Button, Loading, Message, SelectField } from "../components/ui";
import { dateTime, hours } from "../format";
import { useAction, useData, useShared } from "../store";

/** Open orders of my community, urgent first; filter by field; accept. */
export function Board() {
  const { t, i18n } = useTranslation();
  const { me } = useShared();
  const en = i18n.language === "en";
  const [field, setField] = useState("");
  const [community, setCommunity] = useState("");
  const { data: services } = useData(() => call(commands.services()), []);
  const { data: items, error: loadError } = useData(
    () => call(commands.board({ community_id: community || null, field_code: field || null, page: 0, per_page: 100 })),
    [field, community],
  );
  const { run, busy, error, done } = useAction();
  const fields = new Map<string, string>();
  for (const s of services ?? []) fields.set(s.field_code, en ? s.field_en : s.field_zh);

  return (
    <div className="screen">
      <h2>{t("board.title")}</h2>
      <p className="lead">{t("board.lead")}</p>
      <div className="filters">
        <SelectField label={t("board.field")} value={field} onChange={(e) => setField(e.target.value)}>
          <option value="">{t("board.allFields")}</option>
          {[...fields.entries()].map(([code, name]) => (
            <option key={code} value={code}>{name}</option>
          ))}
        </SelectField>
        {me?.is_staff && (
          <SelectField label={t("board.community")} value={community} onChange={(e) => setCommunity(e.target.value)}>
            <option value="">{me.home_community}</option>
            {me.staff_communities.filter((c) => c.id !== me.home_community_id).map((c) => (
              <option key={c.id} value={c.id}>{en ? c.name_en : c.name_zh}</option>
            ))}
          </SelectField>
        )}
      </div>
      <Message error={error ?? loadError} done={done} />
      {!items && !loadError && <Loading text={t("common.loading")} />}
      {items && items.length === 0 && <p className="empty">{t("board.empty")}</p>}
      <ul className="orders" aria-label={t("board.title")}>
        {items?.map((o) => (
          <li key={o.id} className={`order ${o.urgent ? "order-urgent" : ""}`}>
            <div className="order-head">
              <h3 id={`board-${o.id}`}>{en ? o.service_en : o.service_zh}</h3>
              {o.urgent && <Badge tone="urgent">{t("board.urgent")}</Badge>}
              {o.escalated && <Badge tone="warn">{t("board.escalated")}</Badge>}
            </div>
            <p>
              {t("board.where", { place: o.place_hint })} · {o.window_start ? dateTime(o.window_start) : t("board.asap")} · {hours(o.expected_minutes, i18n.language)}
            </p>
            <p>{t("board.people", { taken: o.accepted_count, needed: o.volunteers_needed })}{o.visits_total > 1 ? ` · ${t("board.visits", { count: o.visits_total })}` : ""}</p>
            {/* Every order has this button: its description says which order it takes. */}
            <Button disabled={busy} aria-describedby={`board-${o.id}`} onClick={() => run(() => call(commands.acceptOrder(o.id)), t("board.accepted"))}>
              {t("board.accept")}
            </Button>
          </li>
        ))}
      </ul>
    </div>
  );
}
