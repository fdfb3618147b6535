import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import i18n from "../../src/i18n";
import { Check, DateField, daysInMonth, Message, SelectField, TableScroll, TextField } from "../../src/components/ui";

/** A DateField with its value kept by a parent, as the screens keep it; `seen` records every change. */
function DateHarness({ initial = "", time = false, seen }: { initial?: string; time?: boolean; seen: string[] }) {
  const [value, setValue] = useState(initial);
  return (
    <>
      <DateField
        label="出生日期"
        hint="按身份证填写"
        value={value}
        time={time}
        years={[1941, 1940, 1939]}
        onChange={(v) => {
          seen.push(v);
          setValue(v);
        }}
      />
      <button onClick={() => setValue("")}>清空</button>
    </>
  );
}

/** Render a DateHarness; `pick` chooses a part's option by its unit (年, 月, …), `options` lists a part's choices. */
function renderDate(props: { initial?: string; time?: boolean } = {}) {
  const seen: string[] = [];
  const user = userEvent.setup();
  render(<DateHarness {...props} seen={seen} />);
  const group = screen.getByRole("group", { name: "出生日期" });
  const list = (unit: string) => within(group).getByLabelText(unit);
  return {
    seen,
    user,
    group,
    list,
    pick: (unit: string, value: string) => user.selectOptions(list(unit), value),
    options: (unit: string) => within(list(unit)).getAllByRole("option").slice(1).map((o) => o.textContent),
  };
}

afterEach(() => vi.restoreAllMocks());

describe("the building blocks", () => {
  it("a confirmation goes into a status region that is there before it, so that it is read out", () => {
    const { rerender } = render(<Message />);
    const region = screen.getByRole("status");
    expect(region).toBeEmptyDOMElement();
    rerender(<Message done="已保存。" />);
    expect(screen.getByRole("status")).toBe(region);
    expect(region).toHaveTextContent("已保存。");
  });

  it("an error is an alert, its sign hidden from screen readers", () => {
    render(<Message error="余额不足" />);
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("⚠ 余额不足");
    expect(alert.querySelector("[aria-hidden=true]")).toHaveTextContent("⚠");
  });

  it("a field is labelled by its visible label and described by its hint", () => {
    render(<TextField label="小时数" hint="例如 1 或 0.5" />);
    const input = screen.getByLabelText("小时数");
    expect(input).toHaveAccessibleDescription("例如 1 或 0.5");
  });

  it("a check box is labelled by its text", () => {
    render(<Check label="紧急" />);
    expect(screen.getByRole("checkbox", { name: "紧急" })).toBeInTheDocument();
  });

  it("a table wider than the screen becomes a labelled region that takes the focus; a table that fits does not", () => {
    const table = (
      <TableScroll label="存折明细">
        <table>
          <tbody>
            <tr>
              <td>1</td>
            </tr>
          </tbody>
        </table>
      </TableScroll>
    );
    const fits = render(table);
    expect(screen.queryByRole("region")).not.toBeInTheDocument();
    expect(fits.container.querySelector(".table-scroll")).not.toHaveAttribute("tabindex");
    fits.unmount();
    vi.spyOn(HTMLElement.prototype, "scrollWidth", "get").mockReturnValue(900);
    vi.spyOn(HTMLElement.prototype, "clientWidth", "get").mockReturnValue(600);
    render(table);
    const region = screen.getByRole("region", { name: "存折明细" });
    expect(region).toHaveAttribute("tabindex", "0");
  });

  it("a date is chosen as 年, 月, 日 in that order, and the value is YYYY-MM-DD only once all three are chosen", async () => {
    const { seen, group, pick } = renderDate();
    expect(group).toHaveAccessibleDescription("按身份证填写");
    const lists = within(group).getAllByRole("combobox");
    expect(lists.map((l) => ((l as HTMLSelectElement).labels?.[0]?.textContent ?? ""))).toEqual(["年", "月", "日"]);
    await pick("年", "1941");
    await pick("月", "2");
    expect(seen).toEqual([]);
    await pick("日", "8");
    expect(seen).toEqual(["1941-02-08"]);
  });

  it("the days offered follow the month and the year: 28 in February 1941, 29 in February 1940, 30 in April", async () => {
    const { pick, options } = renderDate();
    const days = () => options("日").length;
    expect(days()).toBe(31);
    await pick("年", "1941");
    await pick("月", "2");
    expect(days()).toBe(28);
    await pick("年", "1940");
    expect(days()).toBe(29);
    await pick("月", "4");
    expect(days()).toBe(30);
    expect([daysInMonth(1900, 2), daysInMonth(2000, 2), daysInMonth(2026, 12)]).toEqual([28, 29, 31]);
  });

  it("a day the new month does not have is cleared, not moved to another day, and the value is empty again", async () => {
    const { seen, list, pick } = renderDate({ initial: "1940-03-31" });
    expect(list("日")).toHaveValue("31");
    await pick("月", "4");
    expect(list("日")).toHaveValue("");
    expect(seen).toEqual([""]);
    await pick("日", "30");
    expect(seen).toEqual(["", "1940-04-30"]);
  });

  it("a date and time has 时 and 分 on a 24-hour clock and gives YYYY-MM-DDTHH:MM", async () => {
    const { seen, pick, options } = renderDate({ time: true });
    expect(options("时")).toEqual(Array.from({ length: 24 }, (_, i) => String(i).padStart(2, "0")));
    for (const [unit, value] of [["年", "1941"], ["月", "12"], ["日", "1"], ["时", "15"]]) await pick(unit, value);
    expect(seen).toEqual([]);
    await pick("分", "5");
    expect(seen).toEqual(["1941-12-01T15:05"]);
  });

  it("a value set from outside shows in the lists, keeps a minute off the step and a year off the list in its order, and clearing it empties them", async () => {
    const { user, group, options } = renderDate({ time: true, initial: "1936-07-09T08:07" });
    const values = () => within(group).getAllByRole("combobox").map((l) => (l as HTMLSelectElement).value);
    expect(values()).toEqual(["1936", "7", "9", "8", "7"]);
    expect(options("年")).toEqual(["1941", "1940", "1939", "1936"]);
    await user.click(screen.getByRole("button", { name: "清空" }));
    expect(values()).toEqual(["", "", "", "", ""]);
  });

  it("in English each list follows its unit (Year 1941 Month 2 Day 8); in Chinese each list comes before it (1941 年)", async () => {
    const order = () => [...screen.getByRole("group").querySelectorAll("select, label")].map((el) => (el.tagName === "SELECT" ? "list" : el.textContent));
    const { unmount } = render(<DateHarness seen={[]} />);
    expect(order()).toEqual(["list", "年", "list", "月", "list", "日"]);
    unmount();
    await i18n.changeLanguage("en");
    try {
      render(<DateHarness seen={[]} />);
      expect(order()).toEqual(["Year", "list", "Month", "list", "Day", "list"]);
    } finally {
      await i18n.changeLanguage("zh-CN");
    }
  });

  it("a required field left empty says so in the app's language, not the system's, and the message goes once it is filled in", async () => {
    const user = userEvent.setup();
    render(
      <form>
        <TextField label="姓名" required defaultValue="" />
        <SelectField label="服务项目" required defaultValue="">
          <option value="">请选择</option>
          <option value="chat">聊天陪伴</option>
        </SelectField>
        <DateField label="出生日期" value="" onChange={() => undefined} years={[1941]} required />
      </form>,
    );
    const form = document.querySelector("form") as HTMLFormElement;
    const name = screen.getByLabelText("姓名") as HTMLInputElement;
    const service = screen.getByLabelText("服务项目") as HTMLSelectElement;
    const year = screen.getByLabelText("年") as HTMLSelectElement;
    expect(form.checkValidity()).toBe(false);
    expect([name.validationMessage, service.validationMessage, year.validationMessage]).toEqual(["请填写此项。", "请选择此项。", "请选择此项。"]);
    await user.type(name, "赵桂兰");
    await user.selectOptions(service, "chat");
    await user.selectOptions(year, "1941");
    expect([name.validity.valid, service.validity.valid, year.validity.valid]).toEqual([true, true, true]);
    await i18n.changeLanguage("en");
    try {
      await user.clear(name);
      expect(form.checkValidity()).toBe(false);
      expect(name.validationMessage).toBe("Please fill in this field.");
    } finally {
      await i18n.changeLanguage("zh-CN");
    }
  });
});
