// Screenshots of the real desktop app for the README (in Chinese, demo data), through
// tauri-driver. Run by scripts/screenshots.sh (which builds and starts a city server).
import path from "node:path";
import { spawn } from "node:child_process";
import { Driver, q, sleep, startDriver } from "../tests/e2e/wd.mjs";

const { APP, SERVER_URL, CODE, WORK, OUT } = process.env;
const driver = await startDriver({ spawn });
const d = new Driver();
await d.start(APP, ["--data-dir", path.join(WORK, "app"), "--enrol-server", SERVER_URL, "--enrol-code", CODE]);
const person = (name) => `//button[contains(@class,'person')][.//span[normalize-space(.)=${q(name)}]]`;
const shot = async (file) => {
  await sleep(1200);
  await d.screenshot(path.join(OUT, file));
  console.log(`saved ${file}`);
};
async function signIn(name) {
  await d.click(person(name));
  await d.type("密码（4到6位数字）", "1234");
  await d.click("//button[normalize-space(.)='登录']");
  await d.find(`//*[@data-testid='signed-in-as'][contains(., ${q(name)})]`);
}
async function lock() {
  await d.click("//button[normalize-space(.)='锁定 / 换人']");
  await d.find("//h2[normalize-space(.)='请选择您的名字']");
}

await d.find(person("沈伟"), 60000);
await d.find("//*[@data-testid='sync-indicator'][@data-state='online']", 30000);
await shot("signin.png");
await signIn("沈伟");
await d.find("//*[@data-testid='dashboard-figures']");
await shot("dashboard.png");
await d.go("desk");
await d.find("//table//tbody/tr");
await d.click("(//table//tbody/tr//button[contains(@class,'link')])[1]");
await d.exec("window.scrollTo(0, 0)");
await shot("desk.png");
await d.go("members");
await d.find("//table//tbody/tr");
await shot("members.png");
await lock();
await signIn("王秀芝");
await d.go("request");
await d.type("按姓名或手机号查找居民", "王德明");
await d.click("//label[contains(@class,'choice')][contains(normalize-space(.), '王德明')]/input");
await d.choose("服务项目", "陪同就医");
await d.type("需求描述", "陪父亲到社区医院复查，需要帮忙挂号");
await shot("request.png");
await lock();
await signIn("马军");
await d.go("board");
await d.find("//li[contains(@class,'order')]");
await shot("board.png");
await d.go("account");
await d.find("//*[@data-testid='balance']");
await shot("account.png");
await d.quit();
driver.kill();
