import { useState } from "react";
import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import type { SignInChoice } from "../bindings";
import { Button, Message, TextField } from "../components/ui";
import { useAction, useData, useShared } from "../store";

/** A shared workstation: pick your name, enter your PIN. */
export function SignIn({ onSettings }: { onSettings: () => void }) {
  const { t } = useTranslation();
  const { setMe, info } = useShared();
  const [query, setQuery] = useState("");
  const [chosen, setChosen] = useState<SignInChoice | null>(null);
  const [pin, setPin] = useState("");
  const { data: choices, error: loadError } = useData(() => call(commands.signInChoices(query)), [query]);
  const { run, busy, error } = useAction();

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!chosen) return;
    const me = await run(() => call(commands.signIn(chosen.id, pin)));
    setPin("");
    if (me) {
      setMe(me);
      window.location.hash = "#/dashboard";
    }
  };

  if (chosen) {
    return (
      <section className="signin" aria-labelledby="signin-title">
        <h2 id="signin-title">{t("signin.hello", { name: chosen.name })}</h2>
        <form onSubmit={submit} className="form narrow">
          <TextField
            label={t("signin.pin")}
            hint={t("signin.pinHint")}
            type="password"
            inputMode="numeric"
            autoComplete="off"
            autoFocus
            maxLength={6}
            value={pin}
            onChange={(e) => setPin(e.target.value.replace(/\D/g, ""))}
          />
          <Message error={error} />
          <div className="actions">
            <Button type="submit" disabled={busy || pin.length < 4}>
              {t("signin.submit")}
            </Button>
            <Button variant="secondary" onClick={() => { setChosen(null); setPin(""); }}>
              {t("signin.notMe")}
            </Button>
          </div>
        </form>
      </section>
    );
  }

  return (
    <section className="signin" aria-labelledby="signin-title">
      <h2 id="signin-title">{t("signin.title")}</h2>
      <p className="lead">{t("signin.lead")}</p>
      <div className="narrow">
        <TextField label={t("signin.search")} value={query} onChange={(e) => setQuery(e.target.value)} type="search" />
      </div>
      <Message error={loadError} />
      {choices && choices.length === 0 && (
        <div className="empty">
          <p>{info?.sync.enrolled ? t("signin.none") : t("signin.notEnrolled")}</p>
          <Button variant="secondary" onClick={onSettings}>{t("nav.settings")}</Button>
        </div>
      )}
      <ul className="people" aria-label={t("signin.people")}>
        {choices?.map((c) => (
          <li key={c.id}>
            <button type="button" className="person" onClick={() => setChosen(c)}>
              <span className="person-name">{c.name}</span>
              <span className="person-meta">
                {c.community} · {c.roles.map((r) => t(`roles.${r}`)).join("、")}
              </span>
            </button>
          </li>
        ))}
      </ul>
      {choices && choices.length > 0 && (
        <p>
          <Button variant="secondary" onClick={onSettings}>{t("nav.settings")}</Button>
        </p>
      )}
    </section>
  );
}
