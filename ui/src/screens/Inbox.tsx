import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import { Button, Message } from "../components/ui";
import { dateTime } from "../format";
import { inboxText } from "../notify";
import { useAction, useData } from "../store";

/** The in-app inbox: the record of every notification. */
export function Inbox() {
  const { t } = useTranslation();
  const { data: items, error: loadError } = useData(() => call(commands.inbox()), []);
  const { run, busy, error } = useAction();
  return (
    <div className="screen">
      <h2>{t("inbox.title")}</h2>
      <Message error={error ?? loadError} />
      {items && items.length === 0 && <p className="empty">{t("inbox.empty")}</p>}
      <ul className="list" aria-label={t("inbox.title")}>
        {items?.map((m) => {
          const { title, body } = inboxText(m, t);
          return (
            <li key={m.id} className={`item ${m.read ? "read" : "unread"}`}>
              <p>
                {!m.read && <span className="badge badge-urgent">{t("inbox.new")}</span>} <strong id={`message-${m.id}`}>{title}</strong>
                <span className="muted"> · {dateTime(m.created_at)}</span>
              </p>
              {body && <p>{body}</p>}
              {!m.read && (
                <Button variant="secondary" disabled={busy} aria-describedby={`message-${m.id}`} onClick={() => run(() => call(commands.markRead(m.id)))}>
                  {t("inbox.markRead")}
                </Button>
              )}
            </li>
          );
        })}
      </ul>
    </div>
  );
}
