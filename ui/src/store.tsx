// What every screen shares: the device, the signed-in member, the sync status, and a version
// number that goes up whenever data changes (a local write or rows pulled by sync).
import { createContext, useCallback, useContext, useEffect, useRef, useState } from "react";
import type { ReactNode } from "react";
import { useTranslation } from "react-i18next";
import { call, commands, errorText, events, isSignedOut } from "./api";
import type { AppInfo, InboxItemView, Me, Preferences, SyncStatusView_Serialize } from "./bindings";
import { notifyInbox } from "./notify";

export type SyncStatus = SyncStatusView_Serialize;

interface Shared {
  info: AppInfo | null;
  me: Me | null;
  sync: SyncStatus | null;
  version: number;
  setMe: (m: Me | null) => void;
  savePrefs: (p: Preferences) => Promise<void>;
  reloadInfo: () => Promise<void>;
  bump: () => void;
}

const Ctx = createContext<Shared | null>(null);

export function useShared(): Shared {
  const c = useContext(Ctx);
  if (!c) throw new Error("useShared outside <SharedProvider>");
  return c;
}

export function applyPreferences(p: Preferences) {
  document.documentElement.style.setProperty("--font-scale", String(p.font_scale / 100));
  document.documentElement.lang = p.lang;
}

export function SharedProvider({ children }: { children: ReactNode }) {
  const { i18n, t } = useTranslation();
  const [info, setInfo] = useState<AppInfo | null>(null);
  const [me, setMe] = useState<Me | null>(null);
  const [sync, setSync] = useState<SyncStatus | null>(null);
  const [version, setVersion] = useState(0);
  const meRef = useRef<Me | null>(null);
  meRef.current = me;
  // The listeners below stay subscribed for the app's life; a change of language must not
  // unsubscribe and subscribe them again (events in between would be lost).
  const tRef = useRef(t);
  tRef.current = t;
  const bump = useCallback(() => setVersion((v) => v + 1), []);

  // react-i18next hands out a new `i18n` object after every change of language: through a ref,
  // the callbacks below (and the event listeners that depend on them) stay the same.
  const i18nRef = useRef(i18n);
  i18nRef.current = i18n;
  const reloadInfo = useCallback(async () => {
    const i = await call(commands.appInfo());
    setInfo(i);
    setSync(i.sync);
    applyPreferences(i.preferences);
    if (i18nRef.current.language !== i.preferences.lang) await i18nRef.current.changeLanguage(i.preferences.lang);
  }, []);

  useEffect(() => {
    reloadInfo().catch(() => undefined);
    commands.currentUser().then((m) => setMe(m)).catch(() => undefined);
    const unlisten: Array<Promise<() => void>> = [
      events.dataChanged.listen(() => bump()),
      events.syncStatusChanged.listen((e) => setSync(e.payload.status)),
      events.sessionLocked.listen(() => setMe(null)),
      events.inboxArrived.listen((e) => {
        if (meRef.current && e.payload.member_id === meRef.current.id) {
          notifyInbox(e.payload.items as InboxItemView[], tRef.current).catch(() => undefined);
        }
        bump();
      }),
    ];
    return () => {
      unlisten.forEach((u) => u.then((f) => f()).catch(() => undefined));
    };
  }, [reloadInfo, bump]);

  // Any key or click is activity: it postpones the automatic lock (at most every 20 s).
  useEffect(() => {
    let last = 0;
    const onActive = () => {
      const now = Date.now();
      if (now - last < 20_000 || !meRef.current) return;
      last = now;
      commands.touch().then((ok) => {
        if (!ok) setMe(null);
      });
    };
    window.addEventListener("keydown", onActive);
    window.addEventListener("pointerdown", onActive);
    return () => {
      window.removeEventListener("keydown", onActive);
      window.removeEventListener("pointerdown", onActive);
    };
  }, []);

  const savePrefs = useCallback(
    async (p: Preferences) => {
      const saved = await call(commands.setPreferences(p));
      applyPreferences(saved);
      await i18nRef.current.changeLanguage(saved.lang);
      await reloadInfo();
    },
    [reloadInfo],
  );

  return (
    <Ctx.Provider value={{ info, me, sync, version, setMe, savePrefs, reloadInfo, bump }}>
      {children}
    </Ctx.Provider>
  );
}

/** Load data for a screen; loads again whenever data changes. */
export function useData<T>(load: () => Promise<T>, deps: unknown[]) {
  const { version, setMe } = useShared();
  const { i18n } = useTranslation();
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load()
      .then((d) => {
        if (!live) return;
        setData(d);
        setError(null);
      })
      .catch((e) => {
        if (!live) return;
        if (isSignedOut(e)) setMe(null);
        setError(errorText(e, i18n.language));
      })
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [version, n, ...deps]);
  return { data, error, loading, reload: () => setN((x) => x + 1) };
}

/** Run a write; returns its error text (or null) and tells the lock screen when signed out. */
export function useAction() {
  const { setMe } = useShared();
  const { i18n } = useTranslation();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  // The button that started the action is disabled while it runs, and a disabled button loses
  // the focus: give it back afterwards, so that a keyboard user stays where they were.
  const focused = useRef<HTMLElement | null>(null);
  useEffect(() => {
    if (busy) return;
    const el = focused.current;
    focused.current = null;
    const lost = !document.activeElement || document.activeElement === document.body;
    if (!el || !lost) return;
    if (el.isConnected && !(el as HTMLButtonElement).disabled) el.focus();
    // The control is gone (an order taken off the board, a message read): the screen takes it.
    else if (!el.isConnected) document.getElementById("main")?.focus();
  }, [busy]);
  const run = useCallback(
    async <T,>(f: () => Promise<T>, success?: string): Promise<T | null> => {
      focused.current = document.activeElement instanceof HTMLElement && document.activeElement !== document.body ? document.activeElement : null;
      setBusy(true);
      setError(null);
      setDone(null);
      try {
        const r = await f();
        if (success) setDone(success);
        return r;
      } catch (e) {
        if (isSignedOut(e)) setMe(null);
        setError(errorText(e, i18n.language));
        return null;
      } finally {
        setBusy(false);
      }
    },
    [i18n, setMe],
  );
  return { run, busy, error, done, setError, setDone };
}
