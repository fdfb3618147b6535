import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { routesFor } from "../../src/App";
import { heading, start } from "./helpers";

const menu = async () => {
  const nav = await screen.findByRole("navigation", { name: "主菜单" });
  return within(nav).getAllByRole("link").map((a) => a.textContent);
};

describe("the menu and the routes", () => {
  it("staff on a staff workstation see every screen, the current one marked", async () => {
    start({ as: "m-staff", route: "members" });
    await heading("成员管理");
    expect(await menu()).toEqual(["数据看板", "申请帮助", "接单大厅", "我的订单", "工作台", "成员管理", "时间账户", "活动", "报表", "消息", "设置"]);
    expect(screen.getByRole("link", { name: "成员管理" })).toHaveAttribute("aria-current", "page");
    expect(document.title).toBe("时间银行 · 成员管理");
  });

  it("a family member's menu has their own orders (to confirm and rate) but not the order board or staff screens", async () => {
    start({ as: "m-xiuzhi" });
    await heading("数据看板");
    const items = await menu();
    expect(items).toContain("我的订单");
    for (const hidden of ["接单大厅", "工作台", "成员管理", "报表"]) expect(items).not.toContain(hidden);
  });

  it("a volunteer's menu has the order board and no staff screens", async () => {
    start({ as: "m-majun" });
    await heading("数据看板");
    const items = await menu();
    expect(items).toContain("接单大厅");
    for (const hidden of ["工作台", "成员管理", "报表"]) expect(items).not.toContain(hidden);
  });

  it("staff on a volunteer's computer do not get the staff screens", () => {
    const staff = { id: "s", name: "李娟", roles: ["staff"], home_community_id: "c", home_community: "c", staff_communities: [], is_staff: true };
    expect(routesFor(staff, "staff")).toContain("desk");
    expect(routesFor(staff, "volunteer")).not.toContain("desk");
    expect(routesFor(staff, "volunteer")).not.toContain("reports");
    expect(routesFor(null, "staff")).toEqual([]);
  });

  it("a screen the member may not use, typed as an address, opens the dashboard instead", async () => {
    start({ as: "m-majun", route: "desk" });
    await heading("数据看板");
    await waitFor(() => expect(window.location.hash).toBe("#/dashboard"));
    expect(screen.queryByRole("heading", { name: "工作台" })).not.toBeInTheDocument();
  });

  it("the skip link moves the focus to the screen and stays on it", async () => {
    start({ as: "m-staff", route: "inbox" });
    await heading("消息");
    const skip = screen.getByRole("link", { name: "跳到主要内容" });
    skip.focus();
    fireEvent.click(skip);
    expect(document.getElementById("main")).toHaveFocus();
    await new Promise((r) => setTimeout(r, 20));
    expect(window.location.hash).toBe("#/inbox");
    expect(screen.getByRole("heading", { level: 2, name: "消息" })).toBeInTheDocument();
  });

  it("a new screen takes the focus to its content and names the window", async () => {
    const { user } = start({ as: "m-staff", route: "dashboard" });
    await heading("数据看板");
    await user.click(screen.getByRole("link", { name: "时间账户" }));
    await heading("时间账户");
    expect(document.getElementById("main")).toHaveFocus();
    expect(document.title).toBe("时间银行 · 时间账户");
  });
});
