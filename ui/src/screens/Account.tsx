import { useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import { Button, Card, Message, SelectField, TextField, TableScroll } from "../components/ui";
import { dateTime, hours } from "../format";
import { useAction, useData, useShared } from "../store";

/** The core writes memos as "中文 / English"; show the part in the UI's language. */
function memoIn(memo: string, lang: string): string {
  const [zh, en] = memo.split(" / ");
  return lang === "en" ? (en ?? zh) : zh;
}

/** The time account: balance, the passbook with every entry, gifts to family, printing. */
export function Account() {
  const { t, i18n } = useTranslation();
  const { me } = useShared();
  const [whose, setWhose] = useState(me?.id ?? "");
  const { data: family } = useData(() => call(commands.familyOf()), []);
  const { data: acct, error } = useData(() => call(commands.account(whose || me?.id || "")), [whose]);
  const lang = i18n.language;
  return (
    <div className="screen">
      <h2>{t("account.title")}</h2>
      {family && family.length > 0 && (
        <div className="narrow no-print">
          <SelectField label={t("account.whose")} value={whose} onChange={(e) => setWhose(e.target.value)}>
            <option value={me?.id}>{t("account.mine")}</option>
            {family.map((f) => (
              <option key={f.id} value={f.id}>{f.name}</option>
            ))}
          </SelectField>
        </div>
      )}
      <Message error={error} />
      {acct && (
        <>
          <div className="balance" data-testid="balance">
            <span className="balance-label">{t("account.balance", { name: acct.name })}</span>
            <span className="balance-value">{hours(acct.balance, lang)}</span>
          </div>
          <div className="actions no-print">
            <Button variant="secondary" onClick={() => window.print()}>{t("account.print")}</Button>
          </div>
          <TableScroll label={t("account.passbook")}>
            <table className="table passbook">
              <caption>{t("account.passbook")}</caption>
              <thead>
                <tr>
                  <th scope="col">{t("account.when")}</th>
                  <th scope="col">{t("account.what")}</th>
                  <th scope="col">{t("account.amount")}</th>
                  <th scope="col">{t("account.after")}</th>
                </tr>
              </thead>
              <tbody>
                {acct.entries.map((e) => (
                  <tr key={e.entry_id}>
                    <td>{dateTime(e.at)}</td>
                    <td>
                      {t(`kinds.${e.kind}`, { defaultValue: e.kind })}
                      {e.memo ? ` · ${memoIn(e.memo, lang)}` : ""}
                    </td>
                    <td className={e.amount < 0 ? "neg" : "pos"}>{e.amount > 0 ? "+" : ""}{hours(e.amount, lang)}</td>
                    <td>{e.balance_after === null ? "—" : hours(e.balance_after, lang)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
          {acct.entries.length === 0 && <p className="empty">{t("account.noEntries")}</p>}
        </>
      )}
      {(whose === me?.id || !whose) && family && <Gift family={family} />}
    </div>
  );
}

function Gift({ family }: { family: { id: string; name: string }[] }) {
  const { t } = useTranslation();
  const { run, busy, error, done } = useAction();
  const [to, setTo] = useState("");
  const [h, setH] = useState("1");
  const [note, setNote] = useState("");
  return (
    <Card title={t("account.giftTitle")} className="no-print">
      <p>{t("account.giftHelp")}</p>
      {family.length === 0 ? (
        <p className="empty">{t("account.noFamily")}</p>
      ) : (
        <div className="form narrow">
          <SelectField label={t("account.giftTo")} value={to} onChange={(e) => setTo(e.target.value)}>
            <option value="">{t("members.pick")}</option>
            {family.map((f) => (
              <option key={f.id} value={f.id}>{f.name}</option>
            ))}
          </SelectField>
          <TextField label={t("account.giftHours")} hint={t("account.giftHoursHint")} inputMode="decimal" value={h} onChange={(e) => setH(e.target.value)} />
          <TextField label={t("account.giftNote")} value={note} onChange={(e) => setNote(e.target.value)} />
          <Message error={error} done={done} />
          <Button
            disabled={busy || !to}
            onClick={() => {
              const minutes = Math.round(Number(h) * 60);
              return run(() => call(commands.gift(to, Number.isFinite(minutes) ? minutes : 0, note)), t("account.gifted"));
            }}
          >
            {t("account.giftButton")}
          </Button>
        </div>
      )}
    </Card>
  );
}
