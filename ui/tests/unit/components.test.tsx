import { render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Check, Message, TableScroll, TextField } from "../../src/components/ui";

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
});
