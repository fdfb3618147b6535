// Render the whole app on the in-memory backend (src/mock/backend.ts, through mockIPC), signed
// in as a demo member or not, on a route.
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { App } from "../../src/App";
import { SharedProvider } from "../../src/store";
import { initialState, installMockBackend } from "../../src/mock/backend";
import type { MockState } from "../../src/mock/backend";

export function start(opts: { as?: "m-staff" | "m-majun" | "m-xiuzhi"; route?: string; state?: (s: MockState) => void } = {}) {
  const state = initialState();
  if (opts.as) state.signedIn = opts.as;
  opts.state?.(state);
  const hook = installMockBackend(state);
  window.location.hash = opts.route ? `#/${opts.route}` : "";
  const user = userEvent.setup();
  const view = render(
    <SharedProvider>
      <App />
    </SharedProvider>,
  );
  return { state, hook, user, ...view };
}

/** The calls the app made of one command. */
export function callsOf(state: MockState, cmd: string) {
  return state.calls.filter((c) => c.cmd === cmd).map((c) => c.args as Record<string, unknown>);
}

/** The screen's heading (h2 in main), once it is there. */
export async function heading(name: string) {
  return screen.findByRole("heading", { level: 2, name });
}
