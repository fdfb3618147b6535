import { act, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import i18n from "../../src/i18n";
import { heading, start } from "./helpers";

const balance = () => screen.getByTestId("balance").querySelector(".balance-value")?.textContent;

describe("the time account", () => {
  it("a gift larger than the balance shows the core's refusal, and the balance stays", async () => {
    const { user, state } = start({ as: "m-xiuzhi", route: "account" });
    await heading("时间账户");
    await screen.findByTestId("balance");
    expect(balance()).toBe("12小时");
    await user.selectOptions(screen.getByLabelText("送给"), "王德明");
    const h = screen.getByLabelText("小时数");
    await user.clear(h);
    await user.type(h, "20");
    await user.click(screen.getByRole("button", { name: "赠送" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("余额不足：当前余额12小时，需要20小时。");
    expect(balance()).toBe("12小时");
    expect(state.members["m-xiuzhi"].balance).toBe(720);
  });

  it("a gift within the balance is confirmed, and the balance and the passbook show it", async () => {
    const { user } = start({ as: "m-xiuzhi", route: "account" });
    await screen.findByTestId("balance");
    await user.selectOptions(screen.getByLabelText("送给"), "王德明");
    const h = screen.getByLabelText("小时数");
    await user.clear(h);
    await user.type(h, "1.5");
    await user.type(screen.getByLabelText("留言"), "给爸爸买菜");
    await user.click(screen.getByRole("button", { name: "赠送" }));
    expect(await screen.findByText("赠送成功。")).toBeInTheDocument();
    await waitFor(() => expect(balance()).toBe("10小时30分钟"));
    const rows = within(screen.getByRole("table", { name: "存折明细" })).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("赠送 · 给爸爸买菜");
    expect(rows[1]).toHaveTextContent("-1小时30分钟");
  });

  it("the passbook shows the part of a memo in the UI's language", async () => {
    start({ as: "m-majun", route: "account" });
    const table = await screen.findByRole("table", { name: "存折明细" });
    expect(table).toHaveTextContent("服务存入 · 陪同就医");
    await act(() => i18n.changeLanguage("en"));
    await waitFor(() => expect(screen.getByRole("table", { name: "Passbook" })).toHaveTextContent("Service credited · Escort to clinic"));
  });

  it("without linked family, the gift says so instead of a form", async () => {
    start({ as: "m-majun", route: "account" });
    expect(await screen.findByText("还没有关联的家人。请工作人员帮您关联。")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "赠送" })).not.toBeInTheDocument();
  });
});
