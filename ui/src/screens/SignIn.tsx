import { useEffect, useRef, useState } from "react";
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
  const pinField = useRef<HTMLInputElement>(null);
  // Back from the PIN to the list: the focus returns to the name that was chosen.
  const back = useRef<string | null>(null);
  useEffect(() => {
    if (chosen || !back.current || !choices) return;
    const id = back.current;
    [...document.querySelectorAll<HTMLElement>("[data-member]")].find((b) => b.dataset.member === id)?.focus();
    back.current = null;
  }, [chosen, choices]);

  // For the start-up benchmark (bench/app): when the first names are on screen.
  useEffect(() => {
    if (choices && choices.length > 0 && performance.getEntriesByName("signin-interactive").length === 0) {
      performance.mark("signin-interactive");
    }
  }, [choices]);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!chosen) return;
    performance.mark("signin-submitted");
    const me = await run(() => call(commands.signIn(chosen.id, pin)));
    setPin("");
    if (me) {
      setMe(me);
      window.location.hash = "#/dashboard";
    } else {
      // Refused: the field is empty again and has the focus, for the next try.
      pinField.current?.focus();
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
            ref={pinField}
            maxLength={6}
            value={pin}
            onChange={(e) => setPin(e.target.value.replace(/\D/g, ""))}
          />
          <Message error={error} />
          <div className="actions">
            <Button type="submit" disabled={busy || pin.length < 4}>
              {t("signin.submit")}
            </Button>
            <Button variant="secondary" onClick={() => { back.current = chosen.id; setChosen(null); setPin(""); }}>
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
            <button type="button" className="person" data-member={c.id} onClick={() => setChosen(c)}>
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
