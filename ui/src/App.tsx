import { useEffect, useRef, useState } from "react";
import type { MouseEvent } from "react";
import { useTranslation } from "react-i18next";
import { commands } from "./api";
import type { Me } from "./bindings";
import { SyncIndicator } from "./components/SyncIndicator";
import { Button } from "./components/ui";
import { useShared } from "./store";
import { SignIn } from "./screens/SignIn";
import { Dashboard } from "./screens/Dashboard";
import { RequestHelp } from "./screens/RequestHelp";
import { Board } from "./screens/Board";
import { MyOrders } from "./screens/MyOrders";
import { StaffDesk } from "./screens/StaffDesk";
import { Members } from "./screens/Members";
import { Account } from "./screens/Account";
import { Activities } from "./screens/Activities";
import { Reports } from "./screens/Reports";
import { Inbox } from "./screens/Inbox";
import { Settings } from "./screens/Settings";

export type Route =
  | "dashboard" | "request" | "board" | "my-orders" | "desk" | "members" | "account" | "activities" | "reports" | "inbox" | "settings";

const STAFF_ONLY: Route[] = ["desk", "members", "reports"];
/** Every screen, in the order of the menu. */
export const ALL: Route[] = ["dashboard", "request", "board", "my-orders", "desk", "members", "account", "activities", "reports", "inbox", "settings"];

function readRoute(): Route {
  const r = window.location.hash.replace(/^#\/?/, "") as Route;
  return ALL.includes(r) ? r : "dashboard";
}

/** The routes a member may open here: staff screens need staff on a staff device; the order
 * board is for volunteers (and staff). Everybody has their own orders: a resident or family
 * member confirms and rates the visits they asked for there. */
export function routesFor(me: Me | null, deviceRole: string | undefined): Route[] {
  if (!me) return [];
  const staffDevice = deviceRole !== "volunteer";
  const volunteer = me.roles.includes("volunteer");
  return ALL.filter((r) => (STAFF_ONLY.includes(r) ? me.is_staff && staffDevice : r === "board" ? volunteer || me.is_staff : true));
}

export function App() {
  const { t } = useTranslation();
  const { me, sync, setMe, info } = useShared();
  const [route, setRoute] = useState<Route>(readRoute());
  useEffect(() => {
    const on = () => setRoute(readRoute());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  const signedIn = !!me;
  const routes = routesFor(me, info?.device_role);
  // A screen this member may not use (typed in, or left from the previous member): the dashboard.
  const allowed = !me || routes.includes(route);
  useEffect(() => {
    if (!allowed) window.location.replace("#/dashboard");
  }, [allowed]);
  // Locking or signing out leaves the sign-in list on screen, whatever screen was open.
  const wasSignedIn = useRef(signedIn);
  useEffect(() => {
    if (wasSignedIn.current && !signedIn && route === "settings") window.location.replace("#/dashboard");
    wasSignedIn.current = signedIn;
  }, [signedIn, route]);
  const showSignIn = !me && route !== "settings";
  useEffect(() => {
    document.title = `${t("app.title")} · ${showSignIn ? t("signin.title") : t(`nav.${route}`)}`;
  }, [route, showSignIn, t]);
  // A new screen (or signing in or out) takes the focus to its content, as a new page would.
  useEffect(() => {
    document.getElementById("main")?.focus();
  }, [route, signedIn]);

  const go = (r: Route) => {
    window.location.hash = `#/${r}`;
  };
  // The skip link must not change the hash: that is the route.
  const skip = (e: MouseEvent) => {
    e.preventDefault();
    const main = document.getElementById("main");
    main?.focus();
    main?.scrollIntoView?.();
  };

  if (showSignIn) {
    return (
      <div className="shell shell-signin">
        <header className="topbar">
          <h1 className="brand">{t("app.title")}</h1>
          <SyncIndicator sync={sync} />
        </header>
        <main id="main" tabIndex={-1}>
          <SignIn onSettings={() => go("settings")} />
        </main>
      </div>
    );
  }

  const screen = (() => {
    switch (allowed ? route : "dashboard") {
      case "dashboard": return <Dashboard />;
      case "request": return <RequestHelp />;
      case "board": return <Board />;
      case "my-orders": return <MyOrders />;
      case "desk": return <StaffDesk />;
      case "members": return <Members />;
      case "account": return <Account />;
      case "activities": return <Activities />;
      case "reports": return <Reports />;
      case "inbox": return <Inbox />;
      case "settings": return <Settings onBack={me ? undefined : () => go("dashboard")} />;
    }
  })();

  return (
    <div className="shell">
      <a className="skip" href="#main" onClick={skip}>{t("app.skip")}</a>
      <header className="topbar">
        <h1 className="brand">{t("app.title")}</h1>
        <SyncIndicator sync={sync} />
        {me && (
          <div className="who">
            <span data-testid="signed-in-as">{t("app.signedInAs", { name: me.name })}</span>
            <Button variant="secondary" onClick={() => { commands.signOut().finally(() => setMe(null)); }}>
              {t("app.lock")}
            </Button>
          </div>
        )}
      </header>
      <div className="body">
        {me && (
          <nav className="nav" aria-label={t("nav.label")}>
            <ul>
              {routes.map((r) => (
                <li key={r}>
                  <a href={`#/${r}`} aria-current={route === r ? "page" : undefined} className={route === r ? "active" : ""}>
                    {t(`nav.${r}`)}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        )}
        <main id="main" tabIndex={-1}>
          {screen}
        </main>
      </div>
    </div>
  );
}
