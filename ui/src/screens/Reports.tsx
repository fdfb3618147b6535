import { useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import type { ReportBy } from "../bindings";
import { Button, Message, SelectField, TableScroll } from "../components/ui";
import { useAction, useData } from "../store";

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  text = text.replace(/^\uFEFF/, "");
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\n") {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else if (c !== "\r") cell += c;
  }
  if (cell || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

/** Reports for funders and government: by field, community or month; save as CSV, print. */
export function Reports() {
  const { t } = useTranslation();
  const [by, setBy] = useState<ReportBy>("field");
  const { data: csv, error: loadError } = useData(() => call(commands.reportCsv(by)), [by]);
  const { run, busy, error, done, setDone } = useAction();
  const rows = csv ? parseCsv(csv) : [];
  const [head, ...body] = rows;
  return (
    <div className="screen">
      <h2>{t("reports.title")}</h2>
      <div className="filters no-print">
        <SelectField label={t("reports.by")} value={by} onChange={(e) => setBy(e.target.value as ReportBy)}>
          <option value="field">{t("reports.byField")}</option>
          <option value="community">{t("reports.byCommunity")}</option>
          <option value="month">{t("reports.byMonth")}</option>
        </SelectField>
      </div>
      <div className="actions no-print">
        <Button disabled={busy} onClick={async () => { const path = await run(() => call(commands.saveReport(by))); if (path) setDone(t("reports.saved", { path })); }}>{t("reports.save")}</Button>
        <Button variant="secondary" onClick={() => window.print()}>{t("reports.print")}</Button>
      </div>
      <Message error={error ?? loadError} done={done} />
      {head && (
        <TableScroll label={t("reports.title")}>
          <table className="table">
            <caption>{t(`reports.${by === "field" ? "byField" : by === "community" ? "byCommunity" : "byMonth"}`)}</caption>
            <thead>
              <tr>
                {head.map((h) => (
                  <th key={h} scope="col">{t(`reports.columns.${h}`, { defaultValue: h })}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {body.map((r, i) => (
                <tr key={i}>
                  {r.map((c, j) => (
                    <td key={j}>{c}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
    </div>
  );
}
