import { act, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { callsOf, heading, start } from "./helpers";

async function fillRequest(user: ReturnType<typeof start>["user"]) {
  await user.click(await screen.findByRole("radio", { name: /王德明/ }));
  await user.selectOptions(await screen.findByLabelText("服务项目"), "陪同就医");
  await user.type(screen.getByLabelText("需求描述"), "陪父亲到社区医院复查");
}

describe("asking for help", () => {
  it("offline, the screen says plainly that the request will be sent later; sending it says saved and counts it as waiting", async () => {
    const { user, state } = start({ as: "m-xiuzhi", route: "request", state: (s) => (s.sync = { ...s.sync, online: false, pending: 0 }) });
    await heading("申请帮助");
    const note = screen.getByTestId("offline-note");
    expect(note).toHaveTextContent("现在没有连上城市服务器。您的申请会先保存在这台电脑上，网络恢复后自动发送，不会丢失。");
    await fillRequest(user);
    await user.click(screen.getByRole("button", { name: "提交申请" }));
    expect(await screen.findByText("申请已保存在本机，网络恢复后自动发送。")).toBeInTheDocument();
    expect(screen.getByTestId("sync-indicator")).toHaveAttribute("data-pending", "1");
    expect(screen.getByTestId("sync-indicator")).toHaveTextContent("1项待上传");
    expect(state.orders[0]).toMatchObject({ beneficiary_name: "王德明", posted_by_name: "王秀芝", service_zh: "陪同就医" });
  });

  it("the offline note goes when the connection is back", async () => {
    const { hook } = start({ as: "m-xiuzhi", route: "request", state: (s) => (s.sync = { ...s.sync, online: false }) });
    await heading("申请帮助");
    expect(screen.getByTestId("offline-note")).toBeInTheDocument();
    await act(() => hook.setSync({ online: true }));
    expect(screen.queryByTestId("offline-note")).not.toBeInTheDocument();
  });

  it("online, sending says the request was sent, and the form is ready for the next one", async () => {
    const { user } = start({ as: "m-xiuzhi", route: "request" });
    await heading("申请帮助");
    expect(screen.queryByTestId("offline-note")).not.toBeInTheDocument();
    await fillRequest(user);
    await user.click(screen.getByLabelText("紧急"));
    await user.click(screen.getByRole("button", { name: "提交申请" }));
    expect(await screen.findByText("申请已提交，附近的志愿者会看到。")).toBeInTheDocument();
    expect(screen.getByLabelText("需求描述")).toHaveValue("");
    expect(screen.getByLabelText("紧急")).not.toBeChecked();
  });

  it("asks who needs help before sending", async () => {
    const { user, state } = start({ as: "m-xiuzhi", route: "request" });
    await heading("申请帮助");
    await user.selectOptions(await screen.findByLabelText("服务项目"), "陪同就医");
    await user.type(screen.getByLabelText("需求描述"), "买菜");
    await user.click(screen.getByRole("button", { name: "提交申请" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("请先选择需要帮助的人。");
    expect(callsOf(state, "post_order")).toHaveLength(0);
  });

  it("a family member may ask for themselves or their elder, and sees why", async () => {
    start({ as: "m-xiuzhi", route: "request" });
    const group = await screen.findByRole("group", { name: "选择需要帮助的人" });
    const radios = await within(group).findAllByRole("radio");
    expect(radios.map((r) => r.closest("label")?.textContent)).toEqual([expect.stringContaining("王秀芝 (本人"), expect.stringContaining("王德明 (家人")]);
  });

  it("a weekly request at a set time sends one visit a week", async () => {
    const { user, state } = start({ as: "m-xiuzhi", route: "request" });
    await heading("申请帮助");
    await fillRequest(user);
    await user.click(screen.getByRole("radio", { name: "指定时间" }));
    const when = screen.getByRole("group", { name: "开始时间" });
    const year = String(new Date().getFullYear() + 1);
    for (const [part, value] of [["年", year], ["月", "12"], ["日", "1"], ["时", "9"], ["分", "0"]]) {
      await user.selectOptions(within(when).getByLabelText(part), value);
    }
    await user.selectOptions(screen.getByLabelText("重复"), "每周一次，共4次");
    await user.click(screen.getByRole("button", { name: "提交申请" }));
    await screen.findByText("申请已提交，附近的志愿者会看到。");
    const order = callsOf(state, "post_order")[0].order as { visits: number[]; window_start: number };
    const start0 = new Date(`${year}-12-01T09:00`).getTime();
    expect(order.window_start).toBe(start0);
    expect(order.visits).toEqual([0, 1, 2, 3].map((i) => start0 + i * 7 * 24 * 3600_000));
  });
});
