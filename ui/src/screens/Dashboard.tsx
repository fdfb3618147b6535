import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import { BarChart, Card, Loading, Message, SelectField, Stat } from "../components/ui";
import { hours } from "../format";
import { useData, useShared } from "../store";

const CITY = "*city*";

/** The live figures of product.md, by service field and by community; refreshes by itself. */
export function Dashboard() {
  const { t, i18n } = useTranslation();
  const { me } = useShared();
  // "" : the staff member's communities; an id: one of them; CITY: every community, from the city server.
  const [community, setCommunity] = useState<string>("");
  const { data: d, error } = useData(() => call(community === CITY ? commands.cityDashboard() : commands.dashboard(community || null)), [community]);
  const lang = i18n.language;
  const label = (zh: string, en: string) => (lang === "en" ? en : zh);
  // For the start-up benchmark (bench/app): when the figures are first on screen.
  useEffect(() => {
    if (d && performance.getEntriesByName("dashboard-interactive").length === 0) performance.mark("dashboard-interactive");
  }, [d]);
  return (
    <div className="screen">
      <h2>{t("dashboard.title")}</h2>
      {me?.is_staff && (
        <div className="narrow">
          <SelectField label={t("dashboard.scope")} value={community} onChange={(e) => setCommunity(e.target.value)}>
            <option value="">{t("dashboard.allMine")}</option>
            {me.staff_communities.length > 1 &&
              me.staff_communities.map((c) => (
                <option key={c.id} value={c.id}>{label(c.name_zh, c.name_en)}</option>
              ))}
            <option value={CITY}>{t("dashboard.city")}</option>
          </SelectField>
        </div>
      )}
      <Message error={error} />
      {!d && !error && <Loading text={t("common.loading")} />}
      {d && (
        <>
          <div className="stats" data-testid="dashboard-figures">
            <Stat label={t("dashboard.volunteers")} value={String(d.volunteers_registered)} note={t("dashboard.active30", { count: d.volunteers_active_30d })} />
            <Stat label={t("dashboard.open")} value={String(d.orders_open)} />
            <Stat label={t("dashboard.inService")} value={String(d.orders_in_service)} />
            <Stat label={t("dashboard.completedToday")} value={String(d.orders_completed_today)} note={t("dashboard.month", { count: d.orders_completed_month })} />
            <Stat label={t("dashboard.deposited")} value={hours(d.minutes_deposited, lang)} />
            <Stat label={t("dashboard.spent")} value={hours(d.minutes_spent, lang)} />
            <Stat label={t("dashboard.toAccept")} value={d.median_minutes_to_accept === null ? "—" : hours(d.median_minutes_to_accept, lang)} />
            <Stat label={t("dashboard.satisfaction")} value={d.satisfaction_avg === null ? "—" : `${d.satisfaction_avg.toFixed(1)} / 5`} note={t("dashboard.ratings", { count: d.ratings })} />
          </div>
          <div className="columns">
            <Card title={t("dashboard.byField")}>
              <BarChart title={t("dashboard.hoursByField")} rows={d.by_field.map((c) => ({ label: label(c.label_zh, c.label_en), value: c.minutes_credited }))} format={(v) => hours(v, lang)} />
              <BarChart title={t("dashboard.ordersByField")} rows={d.by_field.map((c) => ({ label: label(c.label_zh, c.label_en), value: c.orders_completed }))} format={(v) => String(v)} />
            </Card>
            <Card title={t("dashboard.byCommunity")}>
              <BarChart title={t("dashboard.hoursByCommunity")} rows={d.by_community.map((c) => ({ label: label(c.label_zh, c.label_en), value: c.minutes_credited }))} format={(v) => hours(v, lang)} />
              <BarChart title={t("dashboard.ordersByCommunity")} rows={d.by_community.map((c) => ({ label: label(c.label_zh, c.label_en), value: c.orders_completed }))} format={(v) => String(v)} />
            </Card>
          </div>
        </>
      )}
    </div>
  );
}
