"""The commands "IsoNet Train", "IsoNet Restore", "IsoNet Segment", "IsoNet Estimate PSF" in ImageJ.

Registration (no Java compilation): a JPype proxy implementing ``ij.CommandListener`` is
added with ``ij.Executer.addCommandListener``. ImageJ asks every listener before running a
command; ours runs the Python handler for its names and returns null (command
consumed), and passes every other command through. The names are also put into ImageJ's
command table (so *Find Commands* and macros know them) and, when ImageJ has a window,
into the menu bar under Plugins > IsoNet (``Menus.add``).

A handler reads its options from the macro (``Macro.getOptions()``), or, when there are
none and ImageJ is interactive, from a GenericDialog whose values it then records with
the macro Recorder; it converts the current image, calls :mod:`isonet_ij.imagej.commands`
and shows the result. Errors end as ``IJ.error(command, message)`` (which also aborts a
running macro); the Python traceback of unexpected errors goes to the Log window.
Handlers run in the thread ImageJ gives them (menu commands get their own thread, macros
run in theirs); one invoked on the AWT event thread is moved to a worker thread so the GUI
never freezes.

Headless ImageJ (``java.awt.headless=true``) cannot build its menus, so ``IJ.run`` finds no
command at all; :func:`ensure_command_table` then fills the table from ImageJ's own
``IJ_Props.txt``, which makes macros, our commands and the built-in commands that open no
dialog work without a display.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import threading
import time
import traceback
import warnings

from ..workflow import missing_extra
from .options import (
    COMMANDS,
    OptionError,
    check_required,
    convert_value,
    describe_image,
    format_value,
    help_html,
    parse_options,
)

__all__ = [
    "install_commands",
    "last_status",
    "dialog_values",
    "uninstall_commands",
    "installed",
    "ensure_command_table",
    "errors",
    "last_result",
    "last_table",
    "MENU_PATH",
    "PSF_PROPERTIES",
]

log = logging.getLogger(__name__)

#: Where the commands appear in the menu bar.
MENU_PATH = "Plugins>IsoNet"
#: Value of our names in ImageJ's command table (the listener consumes them first).
_TABLE_VALUE = "isonet_ij.imagej.bridge (Python command listener)"
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError,
                KeyError)


class _State:
    def __init__(self):
        self.listener = None
        self.menus = False
        self.errors = collections.deque(maxlen=200)
        self.last = {}
        self.tables = {}  # last ResultsTable per command
        self.values = {}  # last dialog values per command
        self.status = ""  # the last "done (N s)" status line
        self.lock = threading.Lock()


_state = _State()


def _j(name: str):
    import jpype

    return jpype.JClass(name)


# --------------------------------------------------------------------------- command table


def _props_commands() -> dict:
    """``{label: "class(\\"arg\\")"}`` of every command in ImageJ's ``IJ_Props.txt``."""
    IJ = _j("ij.IJ")
    stream = IJ.class_.getResourceAsStream("/IJ_Props.txt")
    if stream is None:  # pragma: no cover - every ij.jar has it
        return {}
    try:
        text = bytes(stream.readAllBytes()).decode("latin-1")
    finally:
        stream.close()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^\s*[A-Za-z_]+\d+\s*=\s*"([^"]+)"\s*,\s*(\S.*?)\s*$', line)
        if m and m.group(1) != "-":
            out[m.group(1)] = m.group(2)
    return out


def ensure_command_table() -> int:
    """Make ImageJ's command table exist; return its size.

    With a display, ImageJ builds it (and its menus) itself on the first ``IJ.run``; this
    does the same now. Headless, that build fails inside AWT, so the table is created
    (through reflection: ``Menus.pluginsTable``) and filled from ``IJ_Props.txt``.
    """
    Menus = _j("ij.Menus")
    table = Menus.getCommands()
    if table is not None and not table.isEmpty():
        return int(table.size())
    if bool(_j("java.awt.GraphicsEnvironment").isHeadless()):
        Hashtable = _j("java.util.Hashtable")
        new = Hashtable() if table is None else table
        for label, cls in _props_commands().items():
            new.put(label, cls)
        if table is None:
            field = Menus.class_.getDeclaredField("pluginsTable")
            field.setAccessible(True)
            field.set(None, new)
    else:
        init = _j("ij.IJ").class_.getDeclaredMethod("init")
        init.setAccessible(True)
        init.invoke(None)
    return int(Menus.getCommands().size())


# --------------------------------------------------------------------------- install


def installed() -> bool:
    """True when the commands are registered in the running ImageJ."""
    return _state.listener is not None


def install_commands(*, menus: bool | None = None) -> list[str]:
    """Register IsoNet Train / Restore / Segment / Estimate PSF with the running ImageJ (idempotent).

    Parameters
    ----------
    menus : bool, optional
        Add the items under Plugins > IsoNet; default: when ImageJ has its main window.

    Returns
    -------
    list of str
        The command names.
    """
    import jpype

    if not jpype.isJVMStarted():
        msg = "the JVM is not running: call isonet_ij.imagej.start_imagej() first"
        raise RuntimeError(msg)
    with _state.lock:
        ensure_command_table()
        table = _j("ij.Menus").getCommands()
        if _state.listener is None:
            _state.listener = _make_listener()
            _j("ij.Executer").addCommandListener(_state.listener)
        for name in COMMANDS:
            if not table.containsKey(name):
                table.put(name, _TABLE_VALUE)
        if menus is None:
            menus = _j("ij.IJ").getInstance() is not None
        if menus and not _state.menus:
            _install_menus()
            _state.menus = True
    return list(COMMANDS)


def _install_menus() -> None:
    Menus = _j("ij.Menus")
    for name in COMMANDS:
        Menus.add(f"{MENU_PATH}>{name}", _TABLE_VALUE)


def uninstall_commands() -> None:
    """Remove the command listener (menu items stay until ImageJ rebuilds its menus)."""
    with _state.lock:
        if _state.listener is not None:
            _j("ij.Executer").removeCommandListener(_state.listener)
            _state.listener = None


def errors() -> list[tuple[str, str]]:
    """``(command, message)`` of the errors reported so far in this process, oldest first."""
    return list(_state.errors)


def last_result(command: str):
    """The last ImagePlus (or training / PSF estimate summary) that ``command`` produced, or None."""
    return _state.last.get(command)


def last_status() -> str:
    """The status line the last successful command ended with (``"...: done (N s)"``)."""
    return _state.status


def last_table(command: str):
    """The last ``ij.measure.ResultsTable`` that ``command`` showed, or None.

    Headless ImageJ shows no table windows, so this is where the table is found there.
    """
    return _state.tables.get(command)


def _make_listener():
    from jpype import JImplements, JOverride

    @JImplements("ij.CommandListener")
    class IsoNetCommandListener:
        @JOverride
        def commandExecuting(self, command):
            name = str(command)
            if name in COMMANDS:
                _dispatch(name)
                return None
            if name.lower().startswith("isonet"):
                _unknown_command(name)
                return None
            return command

    return IsoNetCommandListener()


def _unknown_command(name: str) -> None:
    import difflib

    close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.5)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    msg = f'Unrecognized command: "{name}"{hint} (IsoNet commands: {", ".join(COMMANDS)})'
    _report(name, msg)


def _dispatch(name: str) -> None:
    """Run a handler; off the AWT event thread when called there."""
    if bool(_j("java.awt.EventQueue").isDispatchThread()):
        Macro = _j("ij.Macro")
        options = Macro.getOptions()

        def work():
            if options is not None:
                Macro.setOptions(options)
            try:
                _run(name)
            finally:
                Macro.setOptions(None)

        threading.Thread(target=work, name=f"IsoNet: {name}", daemon=True).start()
        return
    _run(name)


# --------------------------------------------------------------------------- one run


def _dialogs_possible() -> bool:
    if bool(_j("java.awt.GraphicsEnvironment").isHeadless()):
        return False
    if bool(_j("ij.macro.Interpreter").isBatchMode()):
        return False
    return _j("ij.IJ").getInstance() is not None


def _run(name: str) -> None:
    spec = COMMANDS[name]
    IJ, Macro, WM = _j("ij.IJ"), _j("ij.Macro"), _j("ij.WindowManager")
    options = Macro.getOptions()
    imp = WM.getCurrentImage()
    failure = None
    locked = False
    try:
        if options is None and _dialogs_possible():
            values = show_dialog(spec, imp)
            if values is None:
                IJ.showStatus(f"{name}: canceled")
                return
            interactive = True
        else:
            values = parse_options(spec, str(options) if options is not None else "")
            interactive = False
        if imp is not None:
            if not imp.lockSilently():
                msg = f"{str(imp.getTitle())!r} is in use by another command; wait for it to finish"
                raise ValueError(msg)
            locked = True
        with _Progress(name) as progress, warnings.catch_warnings(record=True) as caught, \
                _no_recording(interactive):
            warnings.simplefilter("always")
            result = _HANDLERS[name](imp, values, progress)
        for w in caught:  # the engine's warnings (e.g. a factor the model was not trained for)
            IJ.log(f"{name}: warning: {w.message}")
        _state.last[name] = result
        if interactive:
            record(spec, values)
        if result is not None and not isinstance(result, dict):
            result.show()
            IJ.showStatus(progress.final)  # showing an image replaces the status line
        _state.status = progress.final
    except _USER_ERRORS as exc:  # a user's mistake: the message says what to do, no traceback
        failure = _message(exc).removeprefix(f"{name}: ")
        IJ.log(f"{name}: {failure}")
        if isinstance(exc, KeyError):
            IJ.log(traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - everything must reach the user
        advice = missing_extra(exc) if isinstance(exc, ImportError) else None
        failure = advice or f"{type(exc).__name__}: {_message(exc)} (details in the Log window)"
        IJ.log(f"{name}: {advice}" if advice else f"{name} failed:\n{traceback.format_exc()}")
    finally:
        if locked:
            imp.unlock()
    if failure is not None:
        _report(name, failure.removeprefix(f"{name}: "))


@contextlib.contextmanager
def _no_recording(interactive: bool):
    """No ``selectWindow`` recorded for a command's windows before its ``run(...)`` line."""
    field = _j("ij.plugin.frame.Recorder").class_.getField("record")  # JPype: static, via reflection
    was = bool(field.getBoolean(None))
    if interactive:
        field.setBoolean(None, False)
    try:
        yield
    finally:
        if interactive:
            field.setBoolean(None, was)


def _report(name: str, message: str) -> None:
    """``IJ.error(name, message)``, which also aborts a running macro.

    Outside any ``try``: aborting throws Java's "Macro canceled", which must travel back to
    the interpreter untouched. Without an ImageJ window the interpreter's own error dialog
    cannot be shown (headless) or would wait for a click nobody makes (a batch run), so the
    interpreter is told to keep the message (``getErrorMessage()``) instead.
    """
    IJ = _j("ij.IJ")
    _state.errors.append((name, message))
    interp = _calling_interpreter()
    if interp is not None and (IJ.getInstance() is None or
                               bool(_j("java.awt.GraphicsEnvironment").isHeadless())):
        interp.setIgnoreErrors(True)
    IJ.error(name, message)


def _calling_interpreter():
    """The macro interpreter whose ``run()`` called us (``IJ.macroInterpreter``), or None."""
    try:
        field = _j("ij.IJ").class_.getDeclaredField("macroInterpreter")
        field.setAccessible(True)
        interp = field.get(None)
    except Exception:  # noqa: BLE001 - another ImageJ version: fall back
        interp = None
    return interp if interp is not None else _j("ij.macro.Interpreter").getInstance()


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    return text or type(exc).__name__


class _Progress:
    """Status line and progress bar of ImageJ, refreshed by a heartbeat thread."""

    def __init__(self, name: str):
        self.name = name
        self.message = "starting"
        self.fraction = None
        self.fraction_fn = None
        self._stop = threading.Event()
        self._thread = None
        self.t0 = time.monotonic()

    def status(self, message: str, fraction: float | None = None) -> None:
        self.message = message
        if fraction is not None:
            self.fraction = fraction
        self._show()

    def _show(self) -> None:
        IJ = _j("ij.IJ")
        elapsed = time.monotonic() - self.t0
        IJ.showStatus(f"{self.name}: {self.message} ({elapsed:.0f} s)")
        frac = self.fraction
        if self.fraction_fn is not None:
            got = self.fraction_fn()
            frac = got if got is not None else frac
        if frac is not None:
            IJ.showProgress(min(max(float(frac), 0.0), 0.999))

    def _beat(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._show()
            except Exception:  # noqa: BLE001 - a status line must never break a run
                return

    def __enter__(self):
        self._thread = threading.Thread(target=self._beat, name=f"{self.name} status", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)
        IJ = _j("ij.IJ")
        IJ.showProgress(1.0)
        elapsed = time.monotonic() - self.t0
        self.final = f"{self.name}: {'done' if exc[0] is None else 'failed'} ({elapsed:.1f} s)"
        IJ.showStatus(self.final)
        return False


# --------------------------------------------------------------------------- handlers


def _restore(imp, v: dict, progress: _Progress):
    from .commands import restore_imageplus

    progress.status("restoring (xz and yz planes)")
    return restore_imageplus(
        imp, model=v["model"], factor=v["factor"] or None,
        fusion=None if v["fusion"] == "model" else v["fusion"],
        normalization=v["normalization"], weights=v["weights"], max_memory=v["memory"],
        batch_size=v["batch"], precision=v["precision"], tta=bool(v["tta"]),
    )


def _segment(imp, v: dict, progress: _Progress):
    from .commands import segment_imageplus

    progress.status("segmenting")
    out = segment_imageplus(
        imp, threshold=v["threshold"], fill_holes=v["fill"], dynamic=v["dynamic"],
        connectivity=int(v["connectivity"]), min_size=v["minimum"],
        channel=v["channel"] or None, frame=v["frame"] or None,
    )
    return out


def _train(imp, v: dict, progress: _Progress):
    from .commands import train_imageplus, training_progress

    budget = 60.0 * v["time"] if v["time"] else None
    t0 = time.monotonic()

    def fraction():
        done = training_progress(v["model"], v["epochs"]) or 0.0
        if budget:
            done = max(done, (time.monotonic() - t0) / budget)
        return done

    progress.fraction_fn = fraction
    progress.status(f"training ({v['epochs']} epochs x {v['steps']} steps)")
    summary = train_imageplus(
        imp, model_dir=v["model"], psf=v["psf"], mode=v["mode"], arch=v["arch"],
        factor=v["factor"] or None, epochs=v["epochs"], steps_per_epoch=v["steps"],
        patch_size=v["patch"], batch_size=v["batch"], time_budget=budget, seed=v["seed"],
        channel=v["channel"] or None, frame=v["frame"] or None, resume=v["resume"],
        force=v["overwrite"], rounds=v["rounds"],
    )
    _state.values.setdefault("IsoNet Restore", {})["model"] = summary["model_dir"]
    best = summary["best_val_psnr"]
    inp = summary["val_psnr_input"]
    _j("ij.IJ").log(
        f"IsoNet Train: model written to {summary['model_dir']} ({summary['epochs']} epochs, "
        f"stopped by {summary['stop_reason']}, {summary['seconds']} s); validation PSNR "
        f"{best:.2f} dB (input {inp:.2f} dB)" if best is not None else
        f"IsoNet Train: model written to {summary['model_dir']}"
    )
    return summary


#: Java system properties a macro reads with ``getInfo(key)`` after IsoNet Estimate PSF.
PSF_PROPERTIES = {
    "isonet.psf.spec": "psf_spec", "isonet.psf.sigma_xy": "sigma_xy",
    "isonet.psf.sigma_z": "sigma_z", "isonet.psf.sigma_extra": "sigma_extra",
    "isonet.psf.factor": "factor",
}


def _estimate_psf(imp, v: dict, progress: _Progress):
    from .commands import estimate_psf_imageplus, show_psf_estimate

    progress.status("estimating the axial blur")
    summary, plot_imp = estimate_psf_imageplus(
        imp, factor=v["factor"] or None, sigma_xy=v["sigma_xy"] or None,
        psf_output=v["psf_output"] or None, plot=v["plot"],
        channel=v["channel"] or None, frame=v["frame"] or None,
    )
    System = _j("java.lang.System")
    for key, field in PSF_PROPERTIES.items():
        value = summary[field]
        System.setProperty(key, value if isinstance(value, str) else repr(float(value)))
    _state.tables["IsoNet Estimate PSF"] = show_psf_estimate(summary, plot_imp)
    return summary


_HANDLERS = {"IsoNet Restore": _restore, "IsoNet Segment": _segment, "IsoNet Train": _train,
             "IsoNet Estimate PSF": _estimate_psf}


# --------------------------------------------------------------------------- dialog


def dialog_values(name: str) -> dict:
    """The values a command's dialog starts with: the last used in this session, else defaults
    (IsoNet Restore's model: the last model IsoNet Train wrote)."""
    return {**COMMANDS[name].defaults(), **_state.values.get(name, {})}


def show_dialog(spec, imp) -> dict | None:
    """Ask for the options in a GenericDialog; None when canceled.

    Values start from the last ones used in this session. Raises OptionError for values
    the dialog cannot convert.
    """
    GenericDialog = _j("ij.gui.GenericDialog")
    import jpype

    gd = GenericDialog(spec.name)
    values = dialog_values(spec.name)
    hyper = imp is not None and (imp.getNChannels() > 1 or imp.getNFrames() > 1)
    shown = [o for o in spec.options if hyper or not o.hyperstack_only]
    gd.addMessage(describe_image(imp))
    for opt in shown:
        v = values[opt.key]
        label = opt.display_label
        if opt.kind == "path" and opt.file:
            gd.addFileField(label, str(v or ""), 30)
        elif opt.kind == "path":
            gd.addDirectoryField(label, str(v or ""), 30)
        elif opt.kind == "string":
            gd.addStringField(label, str(v), 20)
        elif opt.kind == "number":
            gd.addNumericField(label, float(v), 3)
        elif opt.kind == "int":
            gd.addNumericField(label, float(v), 0)
        elif opt.kind == "choice":
            gd.addChoice(label, jpype.JArray(jpype.JString)(list(opt.choices)), str(v))
        elif opt.kind == "bool":
            gd.addCheckbox(label, bool(v))
    gd.addHelp(help_html(spec))
    gd.showDialog()
    if gd.wasCanceled():
        return None
    for opt in shown:
        if opt.kind in ("path", "string"):
            raw = str(gd.getNextString())
        elif opt.kind in ("number", "int"):
            num = float(gd.getNextNumber())
            if gd.invalidNumber():
                msg = f"{spec.name}: {opt.display_label} must be a number"
                raise OptionError(msg)
            raw = repr(int(num)) if opt.kind == "int" and num == int(num) else repr(num)
        elif opt.kind == "choice":
            raw = str(gd.getNextChoice())
        else:
            raw = "true" if gd.getNextBoolean() else "false"
        values[opt.key] = convert_value(spec, opt, raw)
    check_required(spec, values)
    _state.values[spec.name] = dict(values)
    return values


def record(spec, values: dict) -> None:
    """Write ``run("<command>", "<options>")`` into the macro Recorder (when it records)."""
    Recorder = _j("ij.plugin.frame.Recorder")
    if not bool(Recorder.record):
        return
    if str(_j("java.lang.Thread").currentThread().getName()).startswith("Run$_"):
        return  # called through IJ.run from a macro or plugin: not a user action
    Recorder.setCommand(spec.name)  # also drops options the GenericDialog recorded itself
    for opt in spec.options:
        text = format_value(opt, values.get(opt.key, opt.default))
        if text is None or values.get(opt.key, opt.default) == opt.default and not opt.required:
            continue
        if opt.kind == "bool":
            Recorder.recordOption(opt.key)
        else:
            Recorder.recordOption(opt.key, text)
    Recorder.saveCommand()
