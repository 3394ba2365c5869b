/*
 * pmemd's Cockpit page. Everything comes from the io.pmemd1 service on the system bus
 * through Cockpit's D-Bus client: the Manager's and the Regions' properties (kept current
 * by PropertiesChanged: nothing here polls), GetMemoryMap, GetPlan, ListRegions, and every
 * change through the service's methods, so polkit decides as it does for pmemctl.
 */
"use strict";

(function () {
    const L = window.pmemdLayout;
    const M = window.pmemdMap;
    const { el, patch } = window.pmemdDom;
    const BUS_NAME = "io.pmemd1";
    const MANAGER_PATH = "/io/pmemd1";
    const MANAGER = "io.pmemd1.Manager";
    const REGION = "io.pmemd1.Region";
    const ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied";
    const INVALID_CONFIG = "io.pmemd1.Error.InvalidConfig";
    const VALIDATE_DELAY = 300; // ms after the last keystroke

    // The bus client and the Manager's proxy: made anew for each instance of the service,
    // so that a new instance's properties are read afresh (see connect()).
    let client = null;
    let manager = null;
    const permission = cockpit.permission({ admin: true });

    const page = {
        regions: new Map(), // object path -> Region proxy
        loading: new Set(), // Region proxies whose properties have not arrived yet
        maps: null, // GetMemoryMap's: {firmware, boot}, once read
        plan: null,
        savedConfig: null, // the config file's text as last read
        editorDirty: false,
        validation: 0, // sequence number of the newest Validate call
        failure: "", // why the service could not be reached
        owner: undefined, // the service's unique bus name; null while it does not run
    };

    const $ = id => document.getElementById(id);

    /* ---- errors ---- */

    function describeError(ex) {
        if (ex && ex.name === ACCESS_DENIED) {
            return "Access denied: this needs an administrator (pmemd's polkit policy). " +
                "Turn on administrative access, or ask an administrator. " +
                (ex.message ? `(${ex.message})` : "");
        }
        const name = ex && ex.name ? ex.name.replace(/^io\.pmemd1\.Error\./, "") : "";
        const message = ex && ex.message ? ex.message : String(ex);
        return name ? `${name}: ${message}` : message;
    }

    function showError(what, ex) {
        $("toast-text").textContent = `${what} failed. ${describeError(ex)}`;
        $("toast").dataset.error = ex && ex.name ? ex.name : "";
        $("toast").dataset.kind = "error";
        $("toast").hidden = false;
    }

    function showNotice(text) {
        $("toast-text").textContent = text;
        $("toast").dataset.error = "";
        $("toast").dataset.kind = "notice";
        $("toast").hidden = false;
    }

    /* ---- reading ---- */

    function refresh() {
        if (!manager.valid)
            return Promise.resolve();
        // The memory maps do not change while the machine runs: read once per instance.
        const maps = page.maps ? null : client.call(MANAGER_PATH, MANAGER, "GetMemoryMap", []);
        return Promise.all([
            maps,
            client.call(MANAGER_PATH, MANAGER, "ListRegions", []),
            client.call(MANAGER_PATH, MANAGER, "GetPlan", []).catch(() => [null]),
        ]).then(([found, [rows], [plan]]) => {
            if (found)
                page.maps = { firmware: found[0].map(toRange), boot: found[1].map(toRange) };
            page.plan = plan ? JSON.parse(plan) : null;
            syncRegions(rows.map(row => row[1]));
            page.failure = "";
            render();
        }).catch(ex => {
            page.failure = describeError(ex);
            render();
        });
    }

    function toRange([start, size, type, label]) {
        return { start, size, type, label };
    }

    function syncRegions(paths) {
        for (const [path, proxy] of page.regions) {
            if (!paths.includes(path)) {
                proxy.removeEventListener("changed", render);
                page.regions.delete(path);
                page.loading.delete(proxy);
            }
        }
        for (const path of paths) {
            if (!page.regions.has(path)) {
                const proxy = client.proxy(REGION, path);
                proxy.addEventListener("changed", render);
                page.regions.set(path, proxy);
                page.loading.add(proxy);
                proxy.wait(() => {
                    page.loading.delete(proxy);
                    render();
                });
            }
        }
    }

    /* The config file, watched (inotify through the bridge): a change made elsewhere
     * (pmemctl, an editor) shows here unless the text is being edited. */
    let configFile = null;

    function watchConfig() {
        const path = manager.ConfigPath;
        if (configFile)
            configFile.close();
        configFile = null;
        if (!path)
            return;
        $("config-path").textContent = path;
        configFile = cockpit.file(path, { superuser: "try" });
        configFile.watch((text, tag, error) => {
            if (error) {
                $("config-status").textContent = `${path} could not be read: ${describeError(error)}`;
                return;
            }
            page.savedConfig = text || "";
            if (!page.editorDirty) {
                $("config-text").value = page.savedConfig;
                validateEditor();
            }
            renderEditorButtons();
        });
    }

    /* ---- the banner ---- */

    const STATES = {
        converged: ["Converged", "The machine matches the configuration."],
        "changes-pending": ["Changes pending", "The boot configuration does not match the configuration yet: apply it."],
        "reboot-required": ["Reboot required", "The next boot's command line is written; the regions take effect after a reboot."],
        degraded: ["Degraded", ""],
        "invalid-config": ["Invalid configuration", "The configuration file has problems (below); nothing is changed until they are fixed."],
    };
    const TRIALS = {
        armed: "A trial boot is armed: the next boot tries the new options once and falls back by itself if it does not come up.",
        running: "This boot is a trial boot of new options, being verified.",
        committed: "The last trial boot was verified and committed.",
        failed: "The last trial boot failed; the machine came back on its previous options.",
    };

    function degradedReason() {
        const reasons = [];
        if (manager.ReadError)
            reasons.push(manager.ReadError);
        for (const proxy of page.regions.values()) {
            if (proxy.valid && proxy.State && proxy.State !== "ready" && proxy.State !== "missing")
                reasons.push(`${proxy.Name}: ${proxy.StateReason}`);
        }
        if (manager.Trial === "failed" && manager.TrialReason)
            reasons.push(`trial boot: ${manager.TrialReason}`);
        return reasons.join("; ");
    }

    function renderBanner() {
        const banner = $("banner");
        const actions = [];
        if (!manager.valid || page.owner === null) {
            patch($("banner-actions"), actions);
            banner.className = "banner state-absent";
            $("banner-title").textContent = "pmemd is not running";
            $("banner-detail").textContent = page.failure ||
                "The io.pmemd1 service does not answer on the system bus (systemctl status pmemd).";
            return;
        }
        const state = manager.State || "unknown";
        const [title, text] = STATES[state] || [state, ""];
        banner.className = `banner state-${state}`;
        banner.dataset.state = state;
        banner.dataset.trial = manager.Trial || "none";
        $("banner-title").textContent = title;
        const parts = [state === "degraded" ? degradedReason() : text];
        if (TRIALS[manager.Trial])
            parts.push(TRIALS[manager.Trial] + (manager.TrialReason ? ` (${manager.TrialReason})` : ""));
        $("banner-detail").textContent = parts.filter(Boolean).join(" ");
        if (manager.RebootRequired && state === "reboot-required") {
            actions.push(adminButton("Reboot…", () => $("reboot-dialog").showModal(),
                                       { id: "reboot" }));
        }
        if (manager.Trial === "failed") {
            actions.push(adminButton("Retry the trial boot", () => act(
                "Retrying the trial boot", client.call(MANAGER_PATH, MANAGER, "RetryTrial", []))));
        }
        if (manager.Trial === "armed") {
            actions.push(adminButton("Abort the trial boot", () => act(
                "Aborting the trial boot", client.call(MANAGER_PATH, MANAGER, "AbortTrial", []))));
        }
        patch($("banner-actions"), actions);
    }

    /* ---- privileges ---- */

    function privileged() {
        return permission.allowed !== false;
    }

    function adminButton(label, onclick, props) {
        const button = el("button", { type: "button", class: "needs-admin", ...(props || {}) }, label);
        button.addEventListener("click", onclick);
        markAdmin(button);
        return button;
    }

    /* A session without authority keeps its buttons (trying shows polkit's answer) but
     * each says it needs an administrator. */
    function markAdmin(button) {
        const tag = button.querySelector(".admin-tag");
        if (privileged()) {
            if (tag)
                tag.remove();
            button.removeAttribute("aria-description");
        } else if (!tag) {
            button.append(el("span", { class: "admin-tag" }, " (needs administrator)"));
        }
    }

    function renderPrivileges() {
        document.body.dataset.privileged = privileged() ? "yes" : "no";
        for (const button of document.querySelectorAll(".needs-admin"))
            markAdmin(button);
        $("config-text").readOnly = !privileged();
    }

    /* ---- the memory map ---- */

    function regionRanges() {
        if (page.loading.size)
            return page.drawnRegions || [];
        page.drawnRegions = [...page.regions.values()].filter(p => p.valid && p.Size > 0).map(p => ({
            start: p.Offset, size: p.Size, type: "region", label: p.Name, memmap: p.Memmap,
        }));
        return page.drawnRegions;
    }

    /* This boot's map, with pmem ranges named after the region at the same place, and the
     * kernel image (from its code to its bss) over the RAM that holds it. */
    function bootRanges() {
        const byStart = new Map(regionRanges().map(r => [r.start, r]));
        const ranges = (page.maps ? page.maps.boot : []).map(r => {
            const region = r.type === "persistent-legacy" ? byStart.get(r.start) : null;
            return region && region.size === r.size
                ? { ...r, name: region.label, memmap: region.memmap }
                : r;
        });
        const image = manager.valid ? manager.KernelImage || [] : [];
        if (image.length) {
            const start = Math.min(...image.map(([s]) => s));
            const end = Math.max(...image.map(([s, size]) => s + size));
            ranges.push({ start, size: end - start, type: "kernel", label: "kernel image" });
        }
        return ranges;
    }

    function renderMap() {
        M.draw({ map: $("map"), legend: $("map-legend"), table: $("map-table").tBodies[0] },
               { firmware: page.maps ? page.maps.firmware : [], boot: bootRanges(),
                 next: regionRanges() },
               text => { $("map-detail").textContent = text });
    }

    /* ---- the regions table ---- */

    /* The regions as one table: nothing is drawn while a new region's properties are on
     * their way (a table that grows row by row would move what the user points at). */
    function renderRegions() {
        if (page.loading.size)
            return;
        const body = $("regions").tBodies[0];
        const proxies = [...page.regions.values()].filter(p => p.valid)
                .sort((a, b) => a.Offset - b.Offset);
        $("regions-empty").hidden = proxies.length > 0 || !manager.valid;
        patch(body, proxies.map(renderRegionRow));
    }

    /* The namespace mode as pmemctl shows it: "raw", "fsdax map=dev", "devdax align=2M map=mem". */
    function modeText(p) {
        const words = [p.Mode || "raw"];
        if (p.Align)
            words.push(`align=${L.formatSize(Number(p.Align)).replace(/ ([KMG])iB$/, "$1")}`);
        if (p.PageMap)
            words.push(`map=${p.PageMap}`);
        return words.join(" ");
    }

    function renderRegionRow(p) {
        const actions = el("td", { class: "row-actions" });
        if (p.Mountpoint) {
            const mounted = p.State === "ready" || p.State === "not-dax" || p.State === "no-pmd";
            actions.append(mounted
                ? adminButton("Unmount", () => act(`Unmounting ${p.Name}`, p.call("Unmount", [])),
                              { "aria-label": `Unmount ${p.Name}` })
                : adminButton("Mount", () => act(`Mounting ${p.Name}`, p.call("Mount", [])),
                              { "aria-label": `Mount ${p.Name}` }));
        }
        if (p.FilesystemType && p.Device) {
            actions.append(adminButton("Format…", () => askFormat(p),
                                       { "aria-label": `Format ${p.Name}`, class: "needs-admin danger-outline" }));
        }
        const cell = (label, props, ...children) => el("td", { ...props, "data-label": label }, ...children);
        return el("tr", { "data-region": p.Name },
                  el("th", { scope: "row" }, p.Name),
                  cell("Size", {}, L.formatSize(p.Size)),
                  cell("Address", { class: "mono", title: p.Memmap }, L.hex(p.Offset)),
                  cell("Device", {},
                       el("span", { class: "device-name mono" }, p.CharacterDevice || p.Device || "—"),
                       el("span", { class: "device-mode", title: "namespace mode" }, modeText(p))),
                  cell("Filesystem", {}, p.FilesystemType || "—"),
                  cell("Mountpoint", { class: "mono" }, p.Mountpoint || "—"),
                  cell("DAX", {}, p.Dax ? "on" : "off"),
                  cell("State", { class: `state state-${p.State}` },
                       el("span", { class: "state-name" }, p.State),
                       el("span", { class: "state-reason" }, p.StateReason)),
                  actions);
    }

    let formatting = null;

    function askFormat(p) {
        formatting = p;
        $("format-title").textContent = `Format ${p.Device}?`;
        $("format-text").textContent =
            `A new ${p.FilesystemType} filesystem is made on ${p.Device} (region ${p.Name}, ` +
            `${L.formatSize(p.Size)} at ${L.hex(p.Offset)})` +
            (p.Mountpoint ? `, mounted at ${p.Mountpoint}` : "") +
            `. Everything stored on it is destroyed and cannot be recovered.`;
        $("format-confirm").textContent = `Format ${p.Device}`;
        $("format-force").checked = false;
        $("format-dialog").showModal();
    }

    /* ---- the plan ---- */

    function renderPlan() {
        const plan = page.plan;
        const changes = plan ? plan.changes.filter(c => c.action !== "keep") : [];
        patch($("plan-changes"), (changes.length
            ? changes.map(c => el("li", { class: `change change-${c.action}` },
                                  el("span", { class: "mono" }, `${c.action} ${c.argument}`),
                                  c.reason ? ` — ${c.reason}` : ""))
            : [el("li", { class: "change change-none" },
                  plan ? "Nothing: the next boot's command line already matches the configuration."
                      : "No plan: the configuration or the machine could not be read.")]));
        const warnings = (manager.Warnings || []).map(([code, region, message]) =>
            el("li", { class: "warning", "data-code": code },
               el("strong", {}, region ? `${region}: ` : ""), message));
        patch($("plan-warnings"), warnings);
        $("apply-dry-run").disabled = !manager.valid || manager.State !== "changes-pending";
    }

    /* ---- the editor ---- */

    function renderGutter(problems) {
        const lines = $("config-text").value.split("\n").length;
        const marked = new Map();
        for (const p of problems)
            marked.set(p.line, (marked.has(p.line) ? marked.get(p.line) + "; " : "") + p.message);
        const gutter = $("config-gutter");
        patch(gutter, Array.from({ length: lines }, (_, i) => {
            const number = el("div", { class: marked.has(i + 1) ? "line error" : "line" }, String(i + 1));
            if (marked.has(i + 1))
                number.title = marked.get(i + 1);
            return number;
        }));
        gutter.scrollTop = $("config-text").scrollTop;
    }

    function goToLine(line, column) {
        const text = $("config-text");
        const lines = text.value.split("\n");
        let offset = 0;
        for (let i = 0; i < line - 1 && i < lines.length; i++)
            offset += lines[i].length + 1;
        text.focus();
        text.setSelectionRange(offset + Math.max(column - 1, 0), offset + (lines[line - 1] || "").length);
    }

    function showProblems(problems, warnings) {
        const list = $("config-problems");
        patch(list, [
            ...problems.map(p => {
                const link = el("button", { type: "button", class: "link" },
                                `Line ${p.line}, column ${p.column}`);
                link.addEventListener("click", () => goToLine(p.line, p.column));
                return el("li", { class: "problem", "data-line": String(p.line), "data-column": String(p.column) },
                          link, `: ${p.key ? p.key + ": " : ""}${p.message}`);
            }),
            ...warnings.map(([code, region, message]) =>
                el("li", { class: "warning", "data-code": code }, region ? `${region}: ${message}` : message))]);
        $("config-text").setAttribute("aria-invalid", problems.length ? "true" : "false");
        renderGutter(problems);
    }

    let validateTimer = null;

    function validateEditor() {
        clearTimeout(validateTimer);
        const text = $("config-text").value;
        const sequence = ++page.validation;
        page.editorValid = null;
        renderEditorButtons();
        $("config-status").textContent = "Checking…";
        client.call(MANAGER_PATH, MANAGER, "Validate", [text])
                .then(([warnings]) => {
                    if (sequence !== page.validation)
                        return;
                    page.editorValid = true;
                    $("config-status").textContent = "Valid for this machine.";
                    showProblems([], warnings);
                    renderEditorButtons();
                })
                .catch(ex => {
                    if (sequence !== page.validation)
                        return;
                    page.editorValid = false;
                    const problems = ex.name === INVALID_CONFIG ? L.parseProblems(ex.message) : [];
                    $("config-status").textContent = problems.length
                        ? `${problems.length} problem${problems.length > 1 ? "s" : ""}: nothing can be applied until ${problems.length > 1 ? "they are" : "it is"} fixed.`
                        : `Could not check it: ${describeError(ex)}`;
                    showProblems(problems, []);
                    renderEditorButtons();
                });
    }

    function renderEditorButtons() {
        const changed = page.savedConfig !== null && $("config-text").value !== page.savedConfig;
        $("config-review").disabled = !(changed && page.editorValid === true && manager.valid);
        $("config-revert").disabled = !changed;
        if (!changed)
            $("config-diff-box").hidden = true;
    }

    function reviewConfig() {
        const text = $("config-text").value;
        client.call(MANAGER_PATH, MANAGER, "PlanConfig", [text]).then(([document]) => {
            const plan = JSON.parse(document);
            $("config-diff-path").textContent = manager.ConfigPath;
            $("config-diff").replaceChildren(...L.diffLines(page.savedConfig || "", text).map(
                row => el("span", { class: `diff-line diff-${{ " ": "same", "-": "removed", "+": "added" }[row.op]}` },
                          `${row.op} ${row.text}\n`)));
            const changes = plan.changes.filter(c => c.action !== "keep");
            $("config-diff-plan").replaceChildren(...(changes.length
                ? changes.map(c => el("li", { class: `change change-${c.action}` },
                                      el("span", { class: "mono" }, `${c.action} ${c.argument}`),
                                      c.reason ? ` — ${c.reason}` : ""))
                : [el("li", {}, "The kernel command line stays as it is.")]));
            $("config-diff-box").hidden = false;
            $("config-apply").focus();
        }).catch(ex => showError("Reviewing the configuration", ex));
    }

    function applyConfig() {
        const text = $("config-text").value;
        act("Saving and applying the configuration",
            client.call(MANAGER_PATH, MANAGER, "SetConfig", [text, true]).then(([state]) => {
                page.savedConfig = text;
                page.editorDirty = false;
                $("config-diff-box").hidden = true;
                renderEditorButtons();
                showNotice(`Saved and applied: ${(STATES[state] || [state])[0].toLowerCase()}.`);
            }));
    }

    /* ---- acting ---- */

    function act(what, promise) {
        return promise.catch(ex => showError(what, ex));
    }

    function dryRun() {
        client.call(MANAGER_PATH, MANAGER, "Apply", [true]).then(([state, report]) => {
            $("apply-report").textContent = report.join("\n");
            $("apply-review").hidden = false;
            $("apply-confirm").focus();
        }).catch(ex => showError("The dry run", ex));
    }

    function reboot() {
        $("reboot-dialog").close();
        const logind = cockpit.dbus("org.freedesktop.login1", { superuser: "try" });
        act("Rebooting", logind.call("/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                                     "Reboot", [true]));
    }

    /* ---- wiring ---- */

    function render() {
        document.getElementById("page").setAttribute("aria-busy", "false");
        $("version").textContent = manager.valid && manager.Version ? manager.Version : "";
        renderBanner();
        renderMap();
        renderRegions();
        renderPlan();
        renderPrivileges();
        renderEditorButtons();
        document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
    }

    let lastConfigPath = null;

    /* A client of its own for the running instance of the service, with the Manager's proxy
     * (and the Regions', through refresh). pmemd leaves the bus after a minute without calls;
     * the page then asks for it again (bus activation), and a new instance's state is read
     * through a new client, whose proxies fetch every property anew. */
    function connect() {
        if (client)
            client.close();
        client = cockpit.dbus(BUS_NAME, { superuser: "try" });
        let last; // the owner this client reported last
        client.addEventListener("owner", (event, owner) => {
            page.owner = owner;
            if (owner === null) {
                render();
                client.call(MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", [])
                        .catch(ex => {
                            page.failure = `It could not be started: ${describeError(ex)}`;
                            render();
                        });
            } else if (last !== undefined && owner !== last) {
                page.failure = "";
                connect();
                return;
            }
            last = owner;
        });
        client.addEventListener("close", (event, options) => {
            if (options && options.problem) {
                page.failure = `The bus connection closed: ${options.problem}`;
                render();
            }
        });
        manager = client.proxy(MANAGER, MANAGER_PATH);
        for (const proxy of page.regions.values())
            proxy.removeEventListener("changed", render);
        page.regions.clear();
        page.loading.clear();
        page.maps = null;
        manager.addEventListener("changed", onManagerChanged);
        manager.wait(() => {
            lastConfigPath = manager.ConfigPath;
            watchConfig();
            refresh().then(render);
        });
    }

    function onManagerChanged() {
        refresh();
        if (manager.ConfigPath !== lastConfigPath) {
            lastConfigPath = manager.ConfigPath;
            watchConfig();
        }
    }

    function wire() {
        $("config-text").addEventListener("input", () => {
            page.editorDirty = true;
            renderGutter([]);
            renderEditorButtons();
            clearTimeout(validateTimer);
            validateTimer = setTimeout(validateEditor, VALIDATE_DELAY);
        });
        $("config-text").addEventListener("scroll", () => {
            $("config-gutter").scrollTop = $("config-text").scrollTop;
        });
        $("config-review").addEventListener("click", reviewConfig);
        $("config-apply").addEventListener("click", applyConfig);
        $("config-cancel").addEventListener("click", () => { $("config-diff-box").hidden = true });
        $("config-revert").addEventListener("click", () => {
            $("config-text").value = page.savedConfig || "";
            page.editorDirty = false;
            validateEditor();
        });
        $("apply-dry-run").addEventListener("click", dryRun);
        $("apply-cancel").addEventListener("click", () => { $("apply-review").hidden = true });
        $("apply-confirm").addEventListener("click", () => {
            $("apply-review").hidden = true;
            act("Applying", client.call(MANAGER_PATH, MANAGER, "Apply", [false]));
        });
        $("format-cancel").addEventListener("click", () => $("format-dialog").close());
        $("format-confirm").addEventListener("click", () => {
            const p = formatting;
            $("format-dialog").close();
            const device = p.Device;
            act(`Formatting ${device}`, p.call("Format", [$("format-force").checked])
                    .then(() => showNotice(`${device} has a new ${p.FilesystemType} filesystem.`)));
        });
        $("reboot-cancel").addEventListener("click", () => $("reboot-dialog").close());
        $("reboot-confirm").addEventListener("click", reboot);
        $("toast-close").addEventListener("click", () => { $("toast").hidden = true });

        permission.addEventListener("changed", render);
        connect();
    }

    document.addEventListener("DOMContentLoaded", () => {
        wire();
        render();
    });
}());
