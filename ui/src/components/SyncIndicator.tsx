import { useTranslation } from "react-i18next";
import { call, commands } from "../api";
import { dateTime } from "../format";
import type { SyncStatus } from "../store";

/** Always visible: online or offline, changes waiting, last sync, the last problem in words. */
export function SyncIndicator({ sync }: { sync: SyncStatus | null }) {
  const { t, i18n } = useTranslation();
  if (!sync) return null;
  const state = !sync.enrolled ? "local" : sync.syncing ? "syncing" : sync.online ? "online" : "offline";
  const label =
    state === "local"
      ? t("sync.local")
      : state === "syncing"
        ? t("sync.syncing")
        : state === "online"
          ? sync.pending > 0
            ? t("sync.onlineWaiting")
            : t("sync.online")
          : t("sync.offline");
  // Only the state and the count of waiting changes are a live region: the time of the last
  // sync changes after every round and must not be read out again and again.
  return (
    <div className={`sync sync-${state}`} role="group" aria-label={t("sync.title")} data-testid="sync-indicator" data-state={state} data-pending={sync.pending}>
      <span className="sync-state" role="status">
        <span className="sync-dot" aria-hidden="true" />
        <span className="sync-label">{label}</span>
        {sync.enrolled && (
          <span className="sync-detail">
            {sync.pending > 0 ? t("sync.pending", { count: sync.pending }) : t("sync.nothingPending")}
          </span>
        )}
      </span>
      {sync.enrolled && (
        <span className="sync-detail">
          {t("sync.last", { when: sync.last_success_ms ? dateTime(sync.last_success_ms) : t("sync.never") })}
        </span>
      )}
      {state === "syncing" && sync.pull && sync.pull.total > 0 && (
        // Not part of the live region: it changes with every page of a long pull.
        <span className="sync-progress">
          <progress max={sync.pull.total} value={sync.pull.received} aria-label={t("sync.pulling")} />
          <span className="sync-detail">
            {t("sync.pullingCount", { received: sync.pull.received.toLocaleString(i18n.language), total: sync.pull.total.toLocaleString(i18n.language) })}
          </span>
        </span>
      )}
      {state === "offline" && sync.last_error && <span className="sync-problem">{i18n.language === "en" ? sync.last_error_en ?? sync.last_error : sync.last_error}</span>}
      {state === "offline" && <span className="sync-problem">{t("sync.offlineHelp")}</span>}
      {sync.enrolled && (
        <button type="button" className="btn btn-secondary btn-small" onClick={() => call(commands.syncNow()).catch(() => undefined)}>
          {t("sync.now")}
        </button>
      )}
    </div>
  );
}
