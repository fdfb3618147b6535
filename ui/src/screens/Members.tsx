import { useState } from "react";
import { useTranslation } from "react-i18next";
import { AppError, call, commands, errorText } from "../api";
import type { Role, Relation, Vetting } from "../bindings";

/** One rejected row of a CSV import (the `data` of a csv_invalid error). */
interface RowError {
  line: number;
  field: string;
  reason_zh: string;
  reason_en: string;
}
import { Button, Card, Check, DateField, Message, SelectField, TextField, TableScroll, yearsDownTo } from "../components/ui";
import { useAction, useData, useShared } from "../store";

const ROLES: Role[] = ["resident", "family", "volunteer"];
const RELATIONS: Relation[] = ["child", "spouse", "parent", "grandchild", "grandparent", "other"];
const FIELDS = ["daily_living", "health", "companionship", "emergency"];

/** Members of a community: register, family links, vetting, PINs, CSV import. */
export function Members() {
  const { t, i18n } = useTranslation();
  const { me } = useShared();
  const communities = me?.staff_communities ?? [];
  const [community, setCommunity] = useState(communities[0]?.id ?? "");
  const { data: members, error } = useData(() => call(commands.communityMembers(community)), [community]);
  const en = i18n.language === "en";
  return (
    <div className="screen">
      <h2>{t("members.title")}</h2>
      <div className="filters">
        <SelectField label={t("desk.community")} value={community} onChange={(e) => setCommunity(e.target.value)}>
          {communities.map((c) => (
            <option key={c.id} value={c.id}>{en ? c.name_en : c.name_zh}</option>
          ))}
        </SelectField>
      </div>
      <Message error={error} />
      <div className="columns">
        <div>
          <Register community={community} />
          <Import />
        </div>
        <div>
          <FamilyAndVetting members={members ?? []} />
          <TableScroll label={t("members.caption", { count: members?.length ?? 0 })}>
            <table className="table">
              <caption>{t("members.caption", { count: members?.length ?? 0 })}</caption>
              <thead>
                <tr>
                  <th scope="col">{t("members.name")}</th>
                  <th scope="col">{t("members.phone")}</th>
                  <th scope="col">{t("members.age")}</th>
                  <th scope="col">{t("members.roles")}</th>
                  <th scope="col">{t("members.vetting")}</th>
                </tr>
              </thead>
              <tbody>
                {members?.map((m) => (
                  <tr key={m.id}>
                    <td>{m.name}</td>
                    <td>{m.phone}</td>
                    <td>{m.age}</td>
                    <td>{m.roles.map((r) => t(`roles.${r}`)).join("、")}</td>
                    <td>{m.vetting ? t(`vetting.${m.vetting}`) : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableScroll>
        </div>
      </div>
    </div>
  );
}

function Register({ community }: { community: string }) {
  const { t } = useTranslation();
  const { run, busy, error, done } = useAction();
  const [name, setName] = useState("");
  const [phone, setPhone] = useState("");
  const [dob, setDob] = useState("");
  const [address, setAddress] = useState("");
  const [roles, setRoles] = useState<Role[]>(["resident"]);
  const [skills, setSkills] = useState("");
  const toggle = (r: Role) => setRoles(roles.includes(r) ? roles.filter((x) => x !== r) : [...roles, r]);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const ok = await run(
      () =>
        call(
          commands.registerMember({
            member_id: "",
            name,
            phone,
            date_of_birth: dob,
            home_community_id: community,
            address: address || null,
            roles,
            hardship: false,
            center_id: null,
            volunteer: roles.includes("volunteer") ? { service_fields: FIELDS, skills, availability: "" } : null,
          }),
        ),
      t("members.registered", { name }),
    );
    if (ok) {
      setName("");
      setPhone("");
      setDob("");
      setAddress("");
    }
  };
  return (
    <Card title={t("members.register")}>
      <form className="form" onSubmit={submit}>
        <TextField label={t("members.name")} value={name} onChange={(e) => setName(e.target.value)} required />
        <TextField label={t("members.phone")} inputMode="tel" value={phone} onChange={(e) => setPhone(e.target.value)} required />
        {/* The core takes births from 1900 to today (service/members.rs). */}
        <DateField label={t("members.dob")} value={dob} onChange={setDob} years={yearsDownTo(1900)} required />
        <TextField label={t("members.address")} value={address} onChange={(e) => setAddress(e.target.value)} />
        <fieldset className="choices">
          <legend>{t("members.roles")}</legend>
          {ROLES.map((r) => (
            <Check key={r} label={t(`roles.${r}`)} checked={roles.includes(r)} onChange={() => toggle(r)} />
          ))}
        </fieldset>
        {roles.includes("volunteer") && <TextField label={t("members.skills")} value={skills} onChange={(e) => setSkills(e.target.value)} />}
        <Message error={error} done={done} />
        <Button type="submit" disabled={busy || roles.length === 0}>{t("members.registerButton")}</Button>
      </form>
    </Card>
  );
}

function FamilyAndVetting({ members }: { members: { id: string; name: string; roles: string[] }[] }) {
  const { t } = useTranslation();
  const { run, busy, error, done } = useAction();
  const [elder, setElder] = useState("");
  const [relative, setRelative] = useState("");
  const [relation, setRelation] = useState<Relation>("child");
  const [volunteer, setVolunteer] = useState("");
  const [vetting, setVetting] = useState<Vetting>("verified");
  const [pinFor, setPinFor] = useState("");
  const [pin, setPin] = useState("");
  const pick = (value: string, set: (v: string) => void, label: string, filter?: (m: { roles: string[] }) => boolean) => (
    <SelectField label={label} value={value} onChange={(e) => set(e.target.value)}>
      <option value="">{t("members.pick")}</option>
      {members.filter((m) => !filter || filter(m)).map((m) => (
        <option key={m.id} value={m.id}>{m.name}</option>
      ))}
    </SelectField>
  );
  return (
    <Card title={t("members.familyAndVetting")}>
      <Message error={error} done={done} />
      <div className="form">
        <h3>{t("members.link")}</h3>
        {pick(elder, setElder, t("members.elder"), (m) => m.roles.includes("resident"))}
        {pick(relative, setRelative, t("members.relative"))}
        <SelectField label={t("members.relation")} value={relation} onChange={(e) => setRelation(e.target.value as Relation)}>
          {RELATIONS.map((r) => (
            <option key={r} value={r}>{t(`relations.${r}`)}</option>
          ))}
        </SelectField>
        <Button disabled={busy || !elder || !relative} onClick={() => run(() => call(commands.linkFamily(elder, relative, relation)), t("members.linked"))}>{t("members.linkButton")}</Button>
      </div>
      <div className="form">
        <h3>{t("members.vetTitle")}</h3>
        {pick(volunteer, setVolunteer, t("members.volunteer"), (m) => m.roles.includes("volunteer"))}
        <SelectField label={t("members.vetting")} value={vetting} onChange={(e) => setVetting(e.target.value as Vetting)}>
          {(["registered", "verified", "suspended"] as Vetting[]).map((v) => (
            <option key={v} value={v}>{t(`vetting.${v}`)}</option>
          ))}
        </SelectField>
        <Button disabled={busy || !volunteer} onClick={() => run(() => call(commands.setVetting(volunteer, vetting)), t("members.vetted"))}>{t("members.vetButton")}</Button>
      </div>
      <div className="form">
        <h3>{t("members.pinTitle")}</h3>
        {pick(pinFor, setPinFor, t("members.pinFor"))}
        <TextField label={t("members.newPin")} hint={t("members.pinHint")} type="password" inputMode="numeric" maxLength={6} value={pin} onChange={(e) => setPin(e.target.value.replace(/\D/g, ""))} />
        <Button disabled={busy || !pinFor || pin.length < 4} onClick={() => run(() => call(commands.setMemberPin(pinFor, pin)), t("members.pinSet")).then(() => setPin(""))}>{t("members.pinButton")}</Button>
      </div>
    </Card>
  );
}

function Import() {
  const { t, i18n } = useTranslation();
  const { bump } = useShared();
  const [text, setText] = useState<string | null>(null);
  const [fileName, setFileName] = useState("");
  const [rows, setRows] = useState<RowError[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const en = i18n.language === "en";
  const submit = async () => {
    if (text === null) return;
    setBusy(true);
    setError(null);
    setDone(null);
    setRows([]);
    try {
      const r = await call(commands.importMembers(text));
      setDone(t("members.imported", { count: r.imported }));
      bump();
    } catch (e) {
      setError(errorText(e, i18n.language));
      if (e instanceof AppError && Array.isArray(e.error.data)) setRows(e.error.data as unknown as RowError[]);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title={t("members.import")}>
      <p>{t("members.importHelp")}</p>
      <div className="field">
        <label htmlFor="csv-file">{t("members.csvFile")}</label>
        <input
          id="csv-file"
          type="file"
          aria-describedby="csv-file-hint"
          accept=".csv,text/csv"
          onChange={async (e) => {
            const f = e.target.files?.[0];
            setFileName(f?.name ?? "");
            setText(f ? await f.text() : null);
          }}
        />
        <p className="hint" id="csv-file-hint">{t("members.importColumns")}</p>
      </div>
      <Button disabled={busy || text === null} onClick={submit}>{t("members.importButton", { name: fileName })}</Button>
      <Message error={error} done={done} />
      {rows.length > 0 && (
        <TableScroll label={t("members.rejected", { count: rows.length })}>
          <table className="table" data-testid="rejected-rows">
            <caption>{t("members.rejected", { count: rows.length })}</caption>
            <thead>
              <tr>
                <th scope="col">{t("members.line")}</th>
                <th scope="col">{t("members.column")}</th>
                <th scope="col">{t("members.problem")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r, i) => (
                <tr key={i}>
                  <td>{r.line}</td>
                  <td>{t(`members.fields.${r.field}`, { defaultValue: r.field })}</td>
                  <td>{en ? r.reason_en : r.reason_zh}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
    </Card>
  );
}
