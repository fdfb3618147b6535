import { act, render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import i18n from "../../src/i18n";
import { SyncIndicator } from "../../src/components/SyncIndicator";
import type { SyncStatus } from "../../src/store";
import { heading, start } from "./helpers";

const base: SyncStatus = { enrolled: true, server: "http://s", online: true, pending: 0, last_success_ms: Date.UTC(2026, 10, 28, 6, 0), last_error: null, last_error_en: null, syncing: false, pull: null };

describe("the sync indicator", () => {
  it("says offline with the count of waiting changes, and returns to synced when a sync-status-changed event arrives", async () => {
    const { hook } = start({ as: "m-staff", state: (s) => (s.sync = { ...s.sync, online: false, pending: 2, last_error: "连不上城市服务器。", last_error_en: "The city server cannot be reached." }) });
    await heading("数据看板");
    const ind = screen.getByTestId("sync-indicator");
    expect(ind).toHaveAttribute("data-state", "offline");
    expect(ind).toHaveAttribute("data-pending", "2");
    expect(ind).toHaveTextContent("离线");
    expect(ind).toHaveTextContent("2项待上传");
    expect(ind).toHaveTextContent("连不上城市服务器。");
    expect(ind).toHaveTextContent("您做的所有操作都已保存在本机");

    await act(() => hook.setSync({ online: true, pending: 0, last_error: null, last_error_en: null }));
    expect(ind).toHaveAttribute("data-state", "online");
    expect(ind).toHaveTextContent("已同步");
    expect(ind).toHaveTextContent("没有待上传的内容");
    expect(ind).not.toHaveTextContent("离线");
  });

  it("online with changes still waiting says it is sending them", () => {
    render(<SyncIndicator sync={{ ...base, pending: 3 }} />);
    expect(screen.getByTestId("sync-indicator")).toHaveTextContent("在线，正在上传");
    expect(screen.getByTestId("sync-indicator")).toHaveTextContent("3项待上传");
  });

  it("shows how far a long pull has got while the round runs, and nothing of it once the round is over", () => {
    const { rerender } = render(<SyncIndicator sync={{ ...base, syncing: true, pull: { received: 12000, total: 255092, partition: "c-1" } }} />);
    const bar = screen.getByRole("progressbar", { name: "正在接收数据" });
    expect(bar).toHaveAttribute("value", "12000");
    expect(bar).toHaveAttribute("max", "255092");
    expect(screen.getByTestId("sync-indicator")).toHaveTextContent("正在接收数据：12,000 / 255,092 项");
    expect(within(screen.getByTestId("sync-indicator")).getByRole("status")).not.toHaveTextContent("12,000");
    rerender(<SyncIndicator sync={{ ...base, syncing: false, pull: null }} />);
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
  });

  it("a computer not enrolled says it is not connected, with no sync button", () => {
    render(<SyncIndicator sync={{ ...base, enrolled: false, online: false }} />);
    expect(screen.getByTestId("sync-indicator")).toHaveAttribute("data-state", "local");
    expect(screen.getByText("未连接城市服务器")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "立即同步" })).not.toBeInTheDocument();
  });

  it("only the state and the count are read out when they change, not the time of every sync", () => {
    render(<SyncIndicator sync={base} />);
    const live = within(screen.getByTestId("sync-indicator")).getByRole("status");
    expect(live).toHaveTextContent("已同步");
    expect(live).not.toHaveTextContent("上次同步");
    expect(within(live).queryByRole("button")).not.toBeInTheDocument();
  });

  it("counts in English with the plural", async () => {
    await i18n.changeLanguage("en");
    const { rerender } = render(<SyncIndicator sync={{ ...base, online: false, pending: 1, last_error: "连不上", last_error_en: "Cannot reach the server" }} />);
    expect(screen.getByTestId("sync-indicator")).toHaveTextContent("1 change waiting");
    expect(screen.getByTestId("sync-indicator")).toHaveTextContent("Cannot reach the server");
    rerender(<SyncIndicator sync={{ ...base, online: false, pending: 2 }} />);
    expect(screen.getByTestId("sync-indicator")).toHaveTextContent("2 changes waiting");
  });

  it("'sync now' asks the core to sync", async () => {
    const { user, state } = start({ as: "m-staff" });
    await heading("数据看板");
    await user.click(screen.getByRole("button", { name: "立即同步" }));
    expect(state.calls.some((c) => c.cmd === "sync_now")).toBe(true);
  });
});
