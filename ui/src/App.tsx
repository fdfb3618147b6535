import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { commands } from "./api";
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
const ALL: Route[] = ["dashboard", "request", "board", "my-orders", "desk", "members", "account", "activities", "reports", "inbox", "settings"];

function readRoute(): Route {
  const r = window.location.hash.replace(/^#\/?/, "") as Route;
  return ALL.includes(r) ? r : "dashboard";
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
  useEffect(() => {
    document.title = `${t("app.title")} · ${t(`nav.${route}`)}`;
    document.getElementById("main")?.focus();
  }, [route, t]);

  const go = (r: Route) => {
    window.location.hash = `#/${r}`;
  };
  const staffDevice = info?.device_role !== "volunteer";
  const routes = ALL.filter((r) => !STAFF_ONLY.includes(r) || (me?.is_staff && staffDevice));
  const isVolunteer = me?.roles.includes("volunteer");

  if (!me && route !== "settings") {
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
    switch (route) {
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
      <a className="skip" href="#main">{t("app.skip")}</a>
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
              {routes
                .filter((r) => (r === "board" || r === "my-orders" ? isVolunteer || me.is_staff : true))
                .map((r) => (
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
