import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { heading, start } from "./helpers";

const row = (text: RegExp) => screen.findByRole("button", { name: text });

describe("orders", () => {
  it("a volunteer accepts an order from the board: it says so and the order leaves the board", async () => {
    const { user, state } = start({ as: "m-majun", route: "board" });
    await heading("接单大厅");
    const board = screen.getByRole("list", { name: "接单大厅" });
    await waitFor(() => expect(within(board).getAllByRole("listitem")).toHaveLength(2));
    const first = within(board).getAllByRole("listitem")[0];
    expect(first).toHaveTextContent("陪同就医");
    expect(first).toHaveTextContent("紧急");
    const accept = within(first).getByRole("button", { name: "我来接单" });
    expect(accept).toHaveAccessibleDescription("陪同就医");
    await user.click(accept);
    expect(await screen.findByText("接单成功！请到“我的订单”查看地址和联系方式。")).toBeInTheDocument();
    await waitFor(() => expect(within(board).getAllByRole("listitem")).toHaveLength(1));
    expect(board).not.toHaveTextContent("府苑新村12幢");
    expect(document.getElementById("main")).toHaveFocus();
    expect(state.orders.find((o) => o.id === "o-1")?.volunteers).toEqual(["马军"]);
  });

  it("the board filters by service field", async () => {
    const { user } = start({ as: "m-majun", route: "board" });
    await heading("接单大厅");
    const board = screen.getByRole("list", { name: "接单大厅" });
    await waitFor(() => expect(within(board).getAllByRole("listitem")).toHaveLength(2));
    await user.selectOptions(await screen.findByLabelText("服务类别"), "精神慰藉");
    await waitFor(() => expect(within(board).getAllByRole("listitem")).toHaveLength(1));
    expect(board).toHaveTextContent("聊天陪伴");
  });

  it("another order's panel does not keep the last order's message or typing", async () => {
    const { user } = start({ as: "m-majun", route: "my-orders" });
    await heading("我的订单");
    await user.click(await row(/代购买菜.*已接单/));
    await user.click(await screen.findByRole("button", { name: "到达签到" }));
    expect(await screen.findByText("已签到。")).toBeInTheDocument();
    await user.click(await row(/聊天陪伴.*有争议/));
    await screen.findByRole("heading", { level: 2, name: /聊天陪伴 · 有争议/ });
    expect(screen.queryByText("已签到。")).not.toBeInTheDocument();
  });

  it("confirming a visit with the resident's PIN: a wrong PIN is refused with the core's message, the right one completes it", async () => {
    const { user, state } = start({ as: "m-majun", route: "my-orders" });
    await user.click(await row(/代购买菜.*待确认/));
    const pin = await screen.findByLabelText("老人的确认密码");
    await user.type(pin, "1111");
    await user.click(screen.getByRole("button", { name: "用老人密码确认" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("密码不正确，请老人再输入一次。");
    expect(pin).toHaveValue("");
    await user.type(pin, "2468");
    await user.click(screen.getByRole("button", { name: "用老人密码确认" }));
    expect(await screen.findByText("已确认，服务时间已存入志愿者账户。")).toBeInTheDocument();
    await screen.findByRole("heading", { level: 2, name: "代购买菜 · 已完成" });
    expect(state.orders.find((o) => o.id === "o-3")?.status).toBe("completed");
  });

  it("the staff desk resolves a dispute with a note, and another order does not keep the note", async () => {
    const { user, state } = start({ as: "m-staff", route: "desk" });
    await heading("工作台");
    const table = await screen.findByRole("table", { name: /共6个订单/ });
    const disputed = within(table).getAllByRole("row").find((r) => r.textContent?.includes("有争议"));
    await user.click(within(disputed!).getByRole("button"));
    const note = await screen.findByLabelText("处理说明");
    await user.type(note, "双方确认服务已完成");
    const resolve = screen.getByRole("button", { name: "处理完成" });
    await user.click(resolve);
    expect(await screen.findByText("争议已处理。")).toBeInTheDocument();
    expect(state.orders.find((o) => o.id === "o-5")?.status).toBe("completed");
    const open = within(table).getAllByRole("row").find((r) => r.textContent?.includes("待接单"));
    await user.click(within(open!).getByRole("button"));
    await screen.findByLabelText("指派志愿者");
    expect(screen.queryByText("争议已处理。")).not.toBeInTheDocument();
  });

  it("the staff desk filters orders by status", async () => {
    const { user } = start({ as: "m-staff", route: "desk" });
    await screen.findByRole("table", { name: /共6个订单/ });
    await user.selectOptions(screen.getByLabelText("状态"), "已完成");
    expect(await screen.findByRole("table", { name: "共1个订单" })).toBeInTheDocument();
  });
});
