// What the desktop test sees and does on its own X display, as a person would: a display
// (Xvfb) and a session bus of its own, a tray host (trayer: an XEmbed system tray, which
// libayatana-appindicator falls back to when no StatusNotifierWatcher is on the bus), a
// notification server (dunst) whose notifications are recorded from the bus, screenshots
// (ImageMagick), clicks and keys (xdotool) and reading the screen (tesseract OCR).
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { ROOT } from '../ui/harness.mjs';

export const ARTIFACTS = join(ROOT, 'target', 'desktop-artifacts');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const procs = [];
process.on('exit', () => { for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } } });

/** Spawns a helper process that is killed when the test ends. */
export function helper(cmd, args, opts = {}) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  procs.push(p);
  return p;
}

export function startXvfb() {
  return new Promise((resolve, reject) => {
    const x = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x900x24', '-nolisten', 'tcp'],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    procs.push(x);
    x.stdio[3].on('data', (d) => resolve({ proc: x, display: `:${String(d).trim()}` }));
    x.on('exit', (c) => reject(new Error(`Xvfb exited with ${c}`)));
    setTimeout(() => reject(new Error('Xvfb did not start')), 15000);
  });
}

export function startDbus() {
  return new Promise((resolve, reject) => {
    const d = helper('dbus-daemon', ['--session', '--nofork', '--print-address=1']);
    createInterface({ input: d.stdout }).once('line', (addr) => resolve({ proc: d, address: addr.trim() }));
    d.on('exit', (c) => reject(new Error(`dbus-daemon exited with ${c}`)));
  });
}

/** One X display: screenshots, windows, clicks, keys and OCR on it. */
export function screen(display) {
  const env = { ...process.env, DISPLAY: display };
  const x = (cmd, args) => execFileSync(cmd, args, { env }).toString();
  const s = {
    display,
    /** Every window of the tree: {id, name, cls, w, h, x, y} (absolute position). */
    windows() {
      const out = x('xwininfo', ['-root', '-tree']);
      const re = /^\s*(0x[0-9a-f]+) (?:"([^"]*)"|\(has no name\)): \(([^)]*)\)\s+(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)/gm;
      const found = [];
      for (const m of out.matchAll(re)) {
        found.push({ id: m[1], name: m[2] || '', cls: m[3], w: +m[4], h: +m[5], x: +m[6], y: +m[7] });
      }
      return found;
    },
    async waitWindow(pred, what, ms = 15000) {
      for (let t = 0; t < ms; t += 200) {
        const w = s.windows().find(pred);
        if (w) return w;
        await sleep(200);
      }
      throw new Error(`no window ${what} within ${ms} ms`);
    },
    /** Screenshot of the whole display, kept under target/desktop-artifacts/. */
    shot(name) {
      mkdirSync(ARTIFACTS, { recursive: true });
      const file = join(ARTIFACTS, name);
      x('import', ['-window', 'root', file]);
      return file;
    },
    /** Standard deviation of a region (0 = one flat colour). */
    spread(file, r) {
      return Number(execFileSync('convert', [file, '-crop', `${r.w}x${r.h}+${r.x}+${r.y}`, '+repage',
        '-format', '%[fx:standard_deviation]', 'info:']).toString());
    },
    /** OCR of a region of a screenshot, scaled up 3x: the text and each word's box (in screen
     *  coordinates). */
    read(file, r) {
      const scale = 3;
      const crop = file.replace(/\.png$/, `-crop-${r.x}-${r.y}.png`);
      execFileSync('convert', [file, '-crop', `${r.w}x${r.h}+${r.x}+${r.y}`, '+repage',
        '-resize', `${scale * 100}%`, '-colorspace', 'Gray', crop]);
      const tsv = execFileSync('tesseract', [crop, '-', '--psm', '6', 'tsv'], { stderr: 'ignore' }).toString();
      const words = [];
      for (const line of tsv.split('\n').slice(1)) {
        const f = line.split('\t');
        if (f.length < 12 || !f[11].trim()) continue;
        words.push({
          text: f[11], line: `${f[2]}.${f[3]}.${f[4]}`,
          x: r.x + Math.round(+f[6] / scale), y: r.y + Math.round(+f[7] / scale),
          w: Math.round(+f[8] / scale), h: Math.round(+f[9] / scale),
        });
      }
      const lines = [];
      for (const w of words) {
        const last = lines[lines.length - 1];
        if (last && last.key === w.line) { last.words.push(w); } else lines.push({ key: w.line, words: [w] });
      }
      const text = lines.map((l) => l.words.map((w) => w.text).join(' ')).join('\n');
      writeFileSync(crop.replace(/\.png$/, '.txt'), text);
      return { text, lines: lines.map((l) => ({ text: l.words.map((w) => w.text).join(' '), words: l.words })) };
    },
    /** The centre of the first OCR line matching `re`. */
    lineAt(ocr, re) {
      const l = ocr.lines.find((ln) => re.test(ln.text));
      if (!l) throw new Error(`no line ${re} in:\n${ocr.text}`);
      const first = l.words[0];
      const last = l.words[l.words.length - 1];
      return { x: Math.round((first.x + last.x + last.w) / 2), y: Math.round(first.y + first.h / 2) };
    },
    clicks: 0,
    click(px, py) {
      s.clicks++;
      x('xdotool', ['mousemove', String(px), String(py), 'click', '1']);
    },
    /** Keys typed into the window that has the input focus. */
    type(text) { x('xdotool', ['type', '--delay', '20', text]); },
    key(...keys) { x('xdotool', ['key', '--delay', '60', ...keys]); },
    focus(win) { x('xdotool', ['windowfocus', '--sync', win.id]); },
  };
  return s;
}

/** The tray host: trayer at the top right of the display. */
export async function startTrayHost(scr, busAddress) {
  const p = helper('trayer', ['--edge', 'top', '--align', 'right', '--widthtype', 'request', '--height', '32',
    '--transparent', 'false', '--tint', '0x333333', '--SetDockType', 'true', '--expand', 'true'],
  { env: { ...process.env, DISPLAY: scr.display, DBUS_SESSION_BUS_ADDRESS: busAddress } });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  try {
    await scr.waitWindow((w) => w.cls.includes('"trayer"') && w.name === 'panel', 'trayer panel');
  } catch (e) {
    throw new Error(`${e.message} (trayer ${p.exitCode === null ? 'running' : `exited ${p.exitCode}`}: ${out.slice(-500)})`);
  }
  return p;
}

/**
 * The notification server of the test's bus: dunst (a real one, drawn on the display; a click on
 * a notification with a *sign-in-again* action invokes it), and a monitor on the bus recording
 * every `Notify` call: `{app, summary, body, actions}`.
 */
export function startNotifications(display, busAddress) {
  const env = { ...process.env, DISPLAY: display, DBUS_SESSION_BUS_ADDRESS: busAddress };
  const dir = join(ARTIFACTS, 'dunst');
  mkdirSync(dir, { recursive: true });
  const rc = join(dir, 'dunstrc');
  writeFileSync(rc, [
    // Bottom right: away from the tray's menu at the top right.
    '[global]', '    mouse_left_click = do_action, close_current', '    font = DejaVu Sans 10',
    '    origin = bottom-right', '    offset = 10x10', '    width = 420',
    // Kept on screen until clicked: the test reads and clicks them when it gets there.
    '[urgency_low]', '    timeout = 0', '[urgency_normal]', '    timeout = 0', '[urgency_critical]', '    timeout = 0',
    '[sign_in_again]', '    appname = "*"', '    action_name = "sign-in-again"', '',
  ].join('\n'));
  const dunst = helper('dunst', ['-config', rc], { env });
  const mon = helper('dbus-monitor', ['--session',
    "type='method_call',interface='org.freedesktop.Notifications',member='Notify'"], { env });
  const seen = [];
  const waiters = [];
  let cur = null;
  let strings = [];
  let inArray = false;
  const finish = () => {
    if (!cur) return;
    const [app, icon, summary, body] = [strings[0], strings[1], strings[2], strings[3]];
    const n = { app, icon, summary, body, actions: cur.actions };
    seen.push(n);
    for (const w of waiters.splice(0)) { if (!w(n)) waiters.push(w); }
    cur = null;
  };
  createInterface({ input: mon.stdout }).on('line', (line) => {
    if (/^method call .*member=Notify/.test(line)) { finish(); cur = { actions: [] }; strings = []; inArray = false; return; }
    if (!cur) return;
    const str = /^\s+string "(.*)"$/.exec(line);
    if (/^\s+array \[$/.test(line)) { inArray = true; return; }
    if (/^\s+\]$/.test(line)) { inArray = false; return; }
    if (str) { if (inArray) cur.actions.push(str[1]); else strings.push(str[1]); }
    if (/^\s+int32 /.test(line)) finish(); // the timeout: the call's last argument
  });
  return {
    dunst, seen,
    /** Resolves with the first notification (seen or to come) whose summary matches `re`. */
    wait(re, ms = 20000) {
      const hit = seen.find((n) => re.test(n.summary));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no notification ${re} within ${ms} ms; seen: ${JSON.stringify(seen.map((n) => n.summary))}`)), ms);
        waiters.push((n) => { if (re.test(n.summary)) { clearTimeout(t); resolve(n); return true; } return false; });
      });
    },
    count(re) { return seen.filter((n) => re.test(n.summary)).length; },
    stop() { dunst.kill(); mon.kill(); },
  };
}
