import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import { Button, Card, Message, SelectField, TextField } from "../components/ui";
import { dateTime } from "../format";
import { useAction, useData, useShared } from "../store";

/** Language, text size, automatic lock; city server and enrolment; backup and restore. */
export function Settings({ onBack }: { onBack?: () => void }) {
  const { t, i18n } = useTranslation();
  const { info, savePrefs, me } = useShared();
  const [lang, setLang] = useState("zh-CN");
  const [font, setFont] = useState(100);
  const [lock, setLock] = useState(5);
  useEffect(() => {
    if (info) {
      setLang(info.preferences.lang);
      setFont(info.preferences.font_scale);
      setLock(info.preferences.lock_minutes);
    }
  }, [info]);
  const prefs = useAction();
  return (
    <div className="screen">
      <h2>{t("settings.title")}</h2>
      {onBack && <Button variant="secondary" onClick={onBack}>{t("settings.back")}</Button>}
      <Card title={t("settings.display")}>
        <form
          className="form narrow"
          onSubmit={async (e) => {
            e.preventDefault();
            const saved = await prefs.run(async () => {
              await savePrefs({ lang, font_scale: font, lock_minutes: lock });
              return true;
            });
            // Said in the language just chosen (the `t` of this render is the one before).
            if (saved) prefs.setDone(i18n.t("settings.saved"));
          }}
        >
          <SelectField label={t("settings.language")} value={lang} onChange={(e) => setLang(e.target.value)}>
            <option value="zh-CN" lang="zh-CN">中文</option>
            <option value="en" lang="en">English</option>
          </SelectField>
          <SelectField label={t("settings.fontSize")} value={font} onChange={(e) => setFont(Number(e.target.value))}>
            {[100, 125, 150, 175, 200].map((f) => (
              <option key={f} value={f}>{t(`settings.font${f}`)}</option>
            ))}
          </SelectField>
          <SelectField label={t("settings.lock")} value={lock} onChange={(e) => setLock(Number(e.target.value))}>
            {[1, 2, 5, 10, 15, 30, 60].map((m) => (
              <option key={m} value={m}>{t("settings.lockMinutes", { count: m })}</option>
            ))}
          </SelectField>
          <Message error={prefs.error} done={prefs.done} />
          <Button type="submit" disabled={prefs.busy}>{t("settings.save")}</Button>
        </form>
      </Card>
      <Server />
      {me?.is_staff && info?.device_role !== "volunteer" && <Backups />}
    </div>
  );
}

function Server() {
  const { t } = useTranslation();
  const { info, reloadInfo, sync } = useShared();
  const { run, busy, error, done } = useAction();
  const [server, setServer] = useState("http://127.0.0.1:8620");
  const [code, setCode] = useState("");
  const [name, setName] = useState("");
  return (
    <Card title={t("settings.server")}>
      {sync?.enrolled ? (
        <dl className="facts">
          <dt>{t("settings.serverAddress")}</dt>
          <dd>{sync.server}</dd>
          <dt>{t("settings.deviceId")}</dt>
          <dd>{info?.device_id}</dd>
          <dt>{t("settings.deviceRole")}</dt>
          <dd>{t(`settings.roles.${info?.device_role ?? "local"}`)}</dd>
          <dt>{t("settings.lastSync")}</dt>
          <dd>{dateTime(sync.last_success_ms)}</dd>
        </dl>
      ) : (
        <form
          className="form narrow"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              const r = await call(commands.enrol(server, code, name || t("settings.defaultDeviceName")));
              await reloadInfo();
              return r;
            }, t("settings.enrolled"));
          }}
        >
          <p>{info?.device_id ? t("settings.localOnly") : t("settings.enrolHelp")}</p>
          <TextField label={t("settings.serverAddress")} value={server} onChange={(e) => setServer(e.target.value)} required />
          <TextField label={t("settings.code")} hint={t("settings.codeHint")} value={code} onChange={(e) => setCode(e.target.value)} required />
          <TextField label={t("settings.deviceName")} value={name} onChange={(e) => setName(e.target.value)} />
          <Message error={error} done={done} />
          <Button type="submit" disabled={busy || !code}>{t("settings.enrol")}</Button>
        </form>
      )}
    </Card>
  );
}

function Backups() {
  const { t } = useTranslation();
  const { data: files } = useData(() => call(commands.listBackups()), []);
  const { run, busy, error, done, setDone } = useAction();
  const [chosen, setChosen] = useState("");
  return (
    <Card title={t("settings.backup")}>
      <p>{t("settings.backupHelp")}</p>
      <Button disabled={busy} onClick={async () => { const f = await run(() => call(commands.backupNow())); if (f) setDone(t("settings.backedUp", { path: f.path })); }}>{t("settings.backupNow")}</Button>
      {files && files.length > 0 && (
        <div className="form narrow">
          <SelectField label={t("settings.restoreFrom")} value={chosen} onChange={(e) => setChosen(e.target.value)}>
            <option value="">{t("members.pick")}</option>
            {files.map((f) => (
              <option key={f.file_name} value={f.file_name}>{f.file_name} · {dateTime(f.modified_ms)}</option>
            ))}
          </SelectField>
          <Button variant="danger" disabled={busy || !chosen} onClick={() => run(() => call(commands.restoreBackup(chosen)), t("settings.restoring"))}>{t("settings.restore")}</Button>
        </div>
      )}
      <Message error={error} done={done} />
    </Card>
  );
}
