import { act, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import i18n from "../../src/i18n";
import { callsOf, heading, start } from "./helpers";

describe("reports", () => {
  it("the report's columns are named in the UI's language, not the file's field names", async () => {
    start({ as: "m-staff", route: "reports" });
    const table = await screen.findByRole("table", { name: "按服务类别" });
    const heads = within(table).getAllByRole("columnheader").map((h) => h.textContent);
    expect(heads).toEqual(["服务类别", "申请订单数", "完成订单数", "存入分钟数", "存入小时数", "志愿者服务人次"]);
    expect(within(table).getAllByRole("row")).toHaveLength(4);
    await act(() => i18n.changeLanguage("en"));
    await waitFor(() => expect(within(table).getAllByRole("columnheader")[0]).toHaveTextContent("Service field"));
  });

  it("grouping by month asks the core for that report and saving says where the file is", async () => {
    const { user, state } = start({ as: "m-staff", route: "reports" });
    await screen.findByRole("table", { name: "按服务类别" });
    await user.selectOptions(screen.getByLabelText("统计方式"), "按月份");
    const table = await screen.findByRole("table", { name: "按月份" });
    expect(within(table).getAllByRole("columnheader")[0]).toHaveTextContent("月份");
    await user.click(screen.getByRole("button", { name: "保存为CSV文件" }));
    expect(await screen.findByText("已保存到：/root/Documents/时间银行报表/report-month.csv")).toBeInTheDocument();
    expect(callsOf(state, "save_report")).toEqual([{ by: "month" }]);
  });
});

describe("activities", () => {
  it("attendance ticked for one activity is not recorded for another", async () => {
    const { user, state } = start({ as: "m-staff", route: "activities" });
    await heading("活动");
    const dumplings = (await screen.findByRole("heading", { name: "重阳节包饺子" })).closest("li")!;
    const phones = screen.getByRole("heading", { name: "智能手机课堂" }).closest("li")!;
    await user.click(within(dumplings).getByRole("button", { name: "签到" }));
    await user.click(await screen.findByRole("checkbox", { name: "马军" }));
    expect(screen.getByRole("button", { name: "记录签到" })).toBeEnabled();
    await user.click(within(phones).getByRole("button", { name: "签到" }));
    await screen.findByRole("heading", { name: "签到 · 智能手机课堂" });
    await screen.findByRole("checkbox", { name: "张桂英" });
    expect(screen.getByRole("button", { name: "记录签到" })).toBeDisabled();
    await user.click(screen.getByRole("checkbox", { name: "张桂英" }));
    await user.click(screen.getByRole("button", { name: "记录签到" }));
    await screen.findByText("签到已记录，时间已存入。");
    expect(callsOf(state, "record_attendance")).toEqual([{ activityId: "a-2", memberIds: ["m-zhang"] }]);
  });

  it("a member signs up for an activity and then sees they are signed up", async () => {
    const { user } = start({ as: "m-majun", route: "activities" });
    const phones = (await screen.findByRole("heading", { name: "智能手机课堂" })).closest("li")!;
    await user.click(within(phones).getByRole("button", { name: "我要报名" }));
    expect(await screen.findByText("报名成功。")).toBeInTheDocument();
    await waitFor(() => expect(within(phones).getByText("您已报名")).toBeInTheDocument());
    expect(phones).toHaveTextContent("已报名2 / 15人");
  });
});

describe("inbox", () => {
  it("messages are written out in words, new ones marked, and can be marked read", async () => {
    const { user, state } = start({ as: "m-majun", route: "inbox" });
    await heading("消息");
    const list = screen.getByRole("list", { name: "消息" });
    await waitFor(() => expect(within(list).getAllByRole("listitem")).toHaveLength(3));
    const first = within(list).getAllByRole("listitem")[0];
    expect(first).toHaveTextContent("新 服务时间已存入");
    expect(first).toHaveTextContent("您的账户存入了2小时。");
    expect(within(list).getAllByRole("listitem")[1]).toHaveTextContent("马军接了您的订单。");
    await user.click(within(first).getByRole("button", { name: "标为已读" }));
    await waitFor(() => expect(within(first).queryByRole("button", { name: "标为已读" })).not.toBeInTheDocument());
    expect(state.inbox[0].read).toBe(true);
    // The button is gone: the focus goes to the screen, not to the start of the page.
    await waitFor(() => expect(document.getElementById("main")).toHaveFocus());
  });
});

describe("the staff desk's other sections", () => {
  it("held hours need a decision note before they can be approved", async () => {
    const { user, state } = start({ as: "m-staff", route: "desk" });
    await user.click(await screen.findByRole("button", { name: "待审核时间与同步冲突" }));
    expect(screen.getByRole("button", { name: "待审核时间与同步冲突" })).toHaveAttribute("aria-pressed", "true");
    const approve = (await screen.findAllByRole("button", { name: "批准记入" }))[0];
    expect(approve).toBeDisabled();
    expect(await screen.findByText(/这个订单已被赵强接单/)).toBeInTheDocument();
    await user.type(screen.getByLabelText("审核说明（批准或驳回都需要填写）"), "已核实");
    await user.click(approve);
    expect(await screen.findByText("已批准，时间已记入。")).toBeInTheDocument();
    expect(state.flags[0].status).toBe("approved");
  });

  it("help whose order another volunteer took first offline shows who took it, the times and the resident's confirmation", async () => {
    const { user } = start({ as: "m-staff", route: "desk" });
    await user.click(await screen.findByRole("button", { name: "待审核时间与同步冲突" }));
    const item = (await screen.findByText(/接单冲突：离线时也服务了，待审核/)).closest("li") as HTMLElement;
    expect(item).toHaveTextContent("马军");
    expect(item).toHaveTextContent("订单已被赵强先接了");
    expect(item).toHaveTextContent("志愿者备注：老人血压正常");
    expect(item).toHaveTextContent("居民已在志愿者设备上用密码确认");
    expect(item).toHaveTextContent("1小时30分钟");
  });
});

describe("the dashboard's city-wide figures", () => {
  it("staff can show every community of the city, asked of the city server", async () => {
    const { user, state } = start({ as: "m-staff", route: "dashboard" });
    await screen.findByTestId("dashboard-figures");
    await user.selectOptions(screen.getByLabelText("查看范围"), "全市所有社区（来自城市服务器）");
    await waitFor(() => expect(screen.getByTestId("dashboard-figures")).toHaveTextContent("2417"));
    expect(callsOf(state, "city_dashboard")).toHaveLength(1);
    const chart = screen.getByText("存入时间（按社区）").closest("figure") as HTMLElement;
    expect(chart).toHaveTextContent("蒋村花园");
  });

  it("offline, the city-wide figures say plainly that the city server cannot be reached", async () => {
    const { user } = start({ as: "m-staff", route: "dashboard", state: (s) => (s.sync = { ...s.sync, online: false }) });
    await screen.findByTestId("dashboard-figures");
    await user.selectOptions(screen.getByLabelText("查看范围"), "全市所有社区（来自城市服务器）");
    expect(await screen.findByText(/连不上城市服务器/)).toBeInTheDocument();
  });

  it("a volunteer is not offered the city-wide figures", async () => {
    start({ as: "m-majun", route: "dashboard" });
    await screen.findByTestId("dashboard-figures");
    expect(screen.queryByLabelText("查看范围")).toBeNull();
  });
});
