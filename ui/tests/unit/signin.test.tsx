import { act, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { heading, start } from "./helpers";

describe("sign-in", () => {
  it("a wrong PIN shows the core's message in an alert, empties the field and gives it the focus", async () => {
    const { user } = start();
    await user.click(await screen.findByRole("button", { name: /李娟/ }));
    const pin = screen.getByLabelText("密码（4到6位数字）");
    expect(pin).toHaveFocus();
    await user.type(pin, "9999");
    await user.click(screen.getByRole("button", { name: "登录" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("密码不正确，请老人再输入一次。");
    expect(pin).toHaveValue("");
    expect(pin).toHaveFocus();
    expect(screen.queryByTestId("signed-in-as")).not.toBeInTheDocument();
  });

  it("the right PIN shows the dashboard and who is signed in", async () => {
    const { user } = start();
    await user.click(await screen.findByRole("button", { name: /李娟/ }));
    await user.type(screen.getByLabelText("密码（4到6位数字）"), "1234{Enter}");
    await heading("数据看板");
    expect(screen.getByTestId("signed-in-as")).toHaveTextContent("当前用户：李娟");
    expect(await screen.findByTestId("dashboard-figures")).toHaveTextContent("132");
    expect(window.location.hash).toBe("#/dashboard");
    expect(document.getElementById("main")).toHaveFocus();
  });

  it("the PIN field takes digits only and the button waits for four of them", async () => {
    const { user } = start();
    await user.click(await screen.findByRole("button", { name: /马军/ }));
    const pin = screen.getByLabelText("密码（4到6位数字）");
    expect(pin).toHaveAttribute("type", "password");
    await user.type(pin, "1a2b3");
    expect(pin).toHaveValue("123");
    expect(screen.getByRole("button", { name: "登录" })).toBeDisabled();
    await user.type(pin, "4");
    expect(screen.getByRole("button", { name: "登录" })).toBeEnabled();
  });

  it("'not me' goes back to the list with the focus on the name chosen before", async () => {
    const { user } = start();
    await user.click(await screen.findByRole("button", { name: /王秀芝/ }));
    await screen.findByRole("heading", { name: "王秀芝，您好" });
    await user.click(screen.getByRole("button", { name: "不是我，返回" }));
    await waitFor(() => expect(screen.getByRole("button", { name: /王秀芝/ })).toHaveFocus());
  });

  it("the list of names searches by name", async () => {
    const { user } = start();
    await screen.findByRole("button", { name: /李娟/ });
    await user.type(screen.getByLabelText("按姓名或手机号查找"), "马");
    await waitFor(() => expect(screen.queryByRole("button", { name: /李娟/ })).not.toBeInTheDocument());
    const people = screen.getByRole("list", { name: "可以登录的人" });
    expect(within(people).getAllByRole("button").map((b) => b.textContent)).toEqual([expect.stringContaining("马军")]);
  });

  it("a resident is not in the list, nor found by part of a name, but by the whole name, or by phone number with the surname only", async () => {
    const { user } = start();
    await screen.findByRole("button", { name: /李娟/ });
    expect(screen.queryByRole("button", { name: /王德明/ })).not.toBeInTheDocument();
    const search = screen.getByLabelText("按姓名或手机号查找");
    await user.type(search, "德明");
    await waitFor(() => expect(screen.queryByRole("button", { name: /李娟/ })).not.toBeInTheDocument());
    expect(screen.queryByRole("button", { name: /王德明/ })).not.toBeInTheDocument();
    await user.clear(search);
    await user.type(search, "王德明");
    expect(await screen.findByRole("button", { name: /王德明/ })).toHaveTextContent("府苑新村");
    await user.clear(search);
    await user.type(search, "13700000001");
    expect(await screen.findByRole("button", { name: /王\*\*/ })).toHaveTextContent("府苑新村");
    expect(screen.queryByText("王德明")).not.toBeInTheDocument();
  });

  it("locking shows the sign-in list, even when settings were open", async () => {
    const { user } = start({ as: "m-staff", route: "settings" });
    await heading("设置");
    await user.click(await screen.findByRole("button", { name: "锁定 / 换人" }));
    await heading("请选择您的名字");
    expect(window.location.hash).toBe("#/dashboard");
    expect(document.title).toBe("时间银行 · 请选择您的名字");
  });

  it("a session-locked event from the core (the automatic lock) shows the sign-in list", async () => {
    const { hook } = start({ as: "m-majun", route: "account" });
    await heading("时间账户");
    await act(() => hook.lock());
    await heading("请选择您的名字");
    expect(screen.queryByRole("navigation")).not.toBeInTheDocument();
  });
});
