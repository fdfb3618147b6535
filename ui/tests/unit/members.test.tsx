import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { heading, start } from "./helpers";

const HEADER = "name,phone,date_of_birth,community,roles,address,service_fields";

async function importFile(user: ReturnType<typeof start>["user"], csv: string) {
  await heading("成员管理");
  await user.upload(screen.getByLabelText("选择CSV文件"), new File([csv], "members.csv", { type: "text/csv" }));
  const button = await screen.findByRole("button", { name: "导入 members.csv" });
  await waitFor(() => expect(button).toBeEnabled());
  await user.click(button);
}

describe("importing members from CSV", () => {
  it("a refusal lists every rejected row with its line, its column and the reason", async () => {
    const { user, state } = start({ as: "m-staff", route: "members" });
    const before = Object.keys(state.members).length;
    await importFile(
      user,
      [
        HEADER,
        "赵强,13800000001,1960-01-02,府苑新村,resident,,",
        "钱芳,1380000,1961-02-03,府苑新村,resident,,",
        "孙丽,13800000003,1962/03/04,府苑新村,resident,,",
        "李伟,13800000004,1963-04-05,东山新村,resident,,",
        "周杰,13800000005,1964-05-06,府苑新村,resident;volunteer,,health",
      ].join("\n"),
    );
    expect(await screen.findByRole("alert")).toHaveTextContent("导入文件有3行错误，没有导入任何数据。请修改后重新导入。");
    const table = screen.getByRole("table", { name: "有3行需要修改" });
    const rows = within(table).getAllByRole("row").slice(1).map((r) => within(r).getAllByRole("cell").map((c) => c.textContent));
    expect(rows).toEqual([
      ["3", "手机号", "“phone”填写有误：手机号应为11位数字"],
      ["4", "出生日期", "出生日期格式应为 YYYY-MM-DD"],
      ["5", "社区", "找不到社区“东山新村”"],
    ]);
    expect(Object.keys(state.members)).toHaveLength(before);
  });

  it("a wrong header is one rejected row, line 1", async () => {
    const { user } = start({ as: "m-staff", route: "members" });
    await importFile(user, "姓名,电话\n赵强,13800000001\n");
    const table = await screen.findByRole("table", { name: "有1行需要修改" });
    expect(within(table).getAllByRole("row")[1]).toHaveTextContent(`1表头表头应为：${HEADER}`);
  });

  it("a good file is imported and says how many, and the list of rejected rows is gone", async () => {
    const { user } = start({ as: "m-staff", route: "members" });
    await importFile(user, `${HEADER}\n赵强,13800000001,1960-01-02,府苑新村,resident,,\n钱芳,13800000002,1961-02-03,西溪花园,resident;volunteer,,health\n`);
    expect(await screen.findByText("已导入2人。")).toBeInTheDocument();
    expect(screen.queryByTestId("rejected-rows")).not.toBeInTheDocument();
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("the file field says what the first line must be", async () => {
    start({ as: "m-staff", route: "members" });
    await heading("成员管理");
    expect(screen.getByLabelText("选择CSV文件")).toHaveAccessibleDescription(expect.stringContaining(HEADER));
  });
});
