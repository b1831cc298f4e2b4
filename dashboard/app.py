"""The Dash app: one page with the sessions, the live score, quality, stream health and summary.

Everything the page shows comes from the :class:`~dashboard.store.SnapshotStore` that one
MQTT client fills (:mod:`dashboard.feed`). Two timers drive it:

- every ``refresh.score_ms`` the score figure is *extended* (``extendData``) with the
  windows scored since the page last looked, newly closed rTMS trains and new cues. The whole
  figure is only drawn when the page opens, the session changes, the healthy-control band
  arrives, or the page fell so far behind that the points it misses were decimated;
- every ``refresh.panels_ms`` the small panels are rebuilt (the fNIRS SCI strip is patched:
  only its values change).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from dash import Dash, Input, Output, Patch, State, dcc, html, no_update

from dashboard import panels
from dashboard.auth import require_basic_auth
from dashboard.config import DashboardConfig
from dashboard.feed import FeedState
from dashboard.figures import sci_strip, score_extension, score_figure
from dashboard.report import SessionReports, build_report
from dashboard.store import SnapshotStore
from dashboard.summary import baseline_vs_now, pre_vs_post

ASSETS = Path(__file__).with_name("assets")
REDRAW_AFTER = 1800
"""Points appended by ``extendData`` before the figure is redrawn from the decimated
history, so an open page never holds much more than the store does (4-hour sessions)."""
NOT_A_DEVICE = (
    "Research software, not a medical device: the score is not a diagnosis. "
    "Sessions are pseudonymous ids; no patient names."
)


def _layout(cfg: DashboardConfig) -> html.Div:
    return html.Div(
        [
            dcc.Location(id="url"),
            html.Header(
                [
                    html.H1("NeuroCLIP Monitor"),
                    dcc.Dropdown(
                        id="session-select", placeholder="session", clearable=False, options=[]
                    ),
                    html.Span(id="phase-badge", className="badge"),
                ]
            ),
            html.Div(id="broker-banner", className="banner hidden"),
            html.Div(
                [html.Span(id="session-banner-text"), html.A(id="report-link", href="")],
                id="session-banner",
                className="banner hidden",
            ),
            html.Section(
                [html.H2("Session estimate"), html.Div(id="estimate")], id="estimate-panel"
            ),
            html.Section(
                [
                    html.H2("Trajectory"),
                    dcc.Graph(
                        id="score-graph",
                        config={"displaylogo": False, "scrollZoom": False},
                        style={"height": "380px"},
                    ),
                ],
                id="score-panel",
            ),
            html.Div(
                [
                    html.Section(
                        [
                            html.H2("Signal quality"),
                            html.Div(id="quality"),
                            dcc.Graph(
                                id="sci-strip",
                                config={"displayModeBar": False},
                                style={"height": "150px"},
                            ),
                        ],
                        id="quality-panel",
                    ),
                    html.Section(
                        [html.H2("Stream health"), html.Div(id="health")], id="health-panel"
                    ),
                ],
                className="columns",
            ),
            html.Section([html.H2("Session summary"), html.Div(id="summary")], id="summary-panel"),
            html.Section([html.H2("Sessions"), html.Div(id="sessions")], id="sessions-panel"),
            html.Footer(NOT_A_DEVICE),
            dcc.Store(id="score-state"),
            dcc.Store(id="sci-state"),
            dcc.Interval(id="score-tick", interval=cfg.refresh.score_ms),
            dcc.Interval(id="panel-tick", interval=cfg.refresh.panels_ms),
        ],
        className="page",
    )


def _linked_session(search: str | None) -> str | None:
    """The ``site/session`` of a ``?session=`` link, if any."""
    return (parse_qs((search or "").lstrip("?")).get("session") or [None])[0]


def create_app(cfg: DashboardConfig, store: SnapshotStore, feed: FeedState) -> Dash:
    """The Dash app over ``store``; ``feed`` says whether the broker is connected."""
    app = Dash(
        __name__,
        title="NeuroCLIP Monitor",
        update_title=None,
        assets_folder=str(ASSETS),
        serve_locally=True,
    )
    app.layout = _layout(cfg)
    reports = SessionReports(cfg.sessions_dir)

    @app.server.route("/report/<site>/<session>")
    def session_report(site: str, session: str):
        logs = reports.logs(site, session)
        if not logs:
            return (
                f"No session log for {site}/{session} in {cfg.sessions_dir} on this machine.",
                404,
                {"Content-Type": "text/plain; charset=utf-8"},
            )
        view = store.session(f"{site}/{session}")
        page = build_report(logs, view.hc_session_range if view else None)
        return page, 200, {"Content-Type": "text/html; charset=utf-8"}

    credentials = cfg.auth.credentials()
    if credentials is not None:
        require_basic_auth(app.server, *credentials)

    @app.callback(
        Output("session-select", "options"),
        Output("session-select", "value"),
        Input("panel-tick", "n_intervals"),
        State("session-select", "value"),
        State("url", "search"),
    )
    def list_sessions(_tick, current, search):
        rows = store.sessions()
        options = [{"label": f"{r['key']} ({r['state']})", "value": r["key"]} for r in rows]
        keys = [r["key"] for r in rows]
        if current in keys:  # the operator's choice stands
            return options, no_update
        wanted = _linked_session(search)
        if wanted is not None:  # a link names one session: that one, or none (the page says so)
            return options, wanted if wanted in keys else None
        online = [r["key"] for r in rows if r["online"]]
        return options, (online or keys or [no_update])[0]

    @app.callback(
        Output("session-select", "value", allow_duplicate=True),
        Input("url", "search"),
        prevent_initial_call="initial_duplicate",
    )
    def follow_link(search):
        wanted = _linked_session(search)
        if wanted is None:
            return no_update
        return wanted if wanted in {r["key"] for r in store.sessions()} else None

    @app.callback(
        Output("sessions", "children"),
        Output("broker-banner", "children"),
        Output("broker-banner", "className"),
        Output("quality", "children"),
        Output("health", "children"),
        Output("summary", "children"),
        Output("phase-badge", "children"),
        Output("estimate", "children"),
        Output("session-banner-text", "children"),
        Output("session-banner", "className"),
        Output("report-link", "children"),
        Output("report-link", "href"),
        Input("panel-tick", "n_intervals"),
        Input("session-select", "value"),
        State("url", "search"),
    )
    def refresh_panels(_tick, key, search):
        rows = store.sessions()
        feed_now = feed.snapshot(store)
        banner_text, banner_class = panels.broker_banner(feed_now)
        view = store.session(key) if key else None
        wanted = _linked_session(search)
        session_text, session_class = panels.session_banner(
            view, None if key else wanted, [r["key"] for r in rows]
        )
        report_text, report_href = "", ""
        if view is not None and view.finished and reports.available(view.site, view.session):
            report_text, report_href = " Session report", reports.link(view.site, view.session)
        if view is None:
            empty = [html.P("Waiting for a session on the broker.", className="awaiting")]
            if wanted and not key:
                empty = [html.P("No such session (see the banner).", className="awaiting")]
            return (
                panels.sessions_table(rows, key),
                banner_text,
                banner_class,
                empty,
                empty,
                empty,
                "",
                empty,
                session_text,
                session_class,
                report_text,
                report_href,
            )
        row = next((r for r in rows if r["key"] == key), {})
        comparisons = [
            c
            for c in (
                baseline_vs_now(
                    view.summary,
                    row.get("hc_median"),
                    (view.estimate or {}).get("recent"),
                    view.part_estimates().get("baseline"),
                ),
                pre_vs_post(key, rows),
            )
            if c is not None
        ]
        badge = panels.phase_text(view) or ("finished" if view.finished else "")
        return (
            panels.sessions_table(rows, key),
            banner_text,
            banner_class,
            panels.quality_panel(view.last_score, view.quality, view.windows),
            panels.health_panel(view.status, feed_now),
            panels.summary_panel(comparisons),
            badge,
            panels.estimate_panel(view),
            session_text,
            session_class,
            report_text,
            report_href,
        )

    @app.callback(
        Output("sci-strip", "figure"),
        Output("sci-state", "data"),
        Input("panel-tick", "n_intervals"),
        Input("session-select", "value"),
        State("sci-state", "data"),
    )
    def refresh_sci(_tick, key, state):
        view = store.session(key) if key else None
        nirs = ((view.quality if view else None) or {}).get("nirs")
        pairs = nirs["pairs"] if nirs else []
        seq = (view.quality or {}).get("seq") if view else None
        if state and state.get("key") == key and state.get("pairs") == pairs:
            if state.get("seq") == seq or not nirs:
                return no_update, no_update
            patch = Patch()
            patch["data"][0]["z"] = [nirs["sci"]]
            return patch, {**state, "seq": seq}
        return sci_strip(view.quality if view else None), {"key": key, "pairs": pairs, "seq": seq}

    @app.callback(
        Output("score-graph", "figure"),
        Output("score-graph", "extendData"),
        Output("score-state", "data"),
        Input("score-tick", "n_intervals"),
        Input("session-select", "value"),
        State("score-state", "data"),
    )
    def refresh_score(_tick, key, state):
        figure, extension, new_state = score_update(store, key, state)
        return (
            no_update if figure is None else figure,
            no_update if extension is None else extension,
            no_update if new_state is None else new_state,
        )

    return app


def score_update(
    store: SnapshotStore, key: str | None, state: dict | None
) -> tuple[object | None, tuple | None, dict | None]:
    """``(figure, extension, new_state)`` for a page showing ``key`` that drew ``state``.

    A whole figure when the page has none for this session, the healthy-control band
    changed, the page missed points that were decimated since, or it has appended
    :data:`REDRAW_AFTER` points; otherwise an ``extendData`` extension, or nothing new.
    ``state`` is what the page keeps: key, last seq, trains and cues drawn, band, points
    appended since the last full figure.
    """
    if not key:
        return None, None, None
    delta = store.delta(key, (state or {}).get("seq", -1))
    if delta is None:
        return None, None, None
    band = list(delta.hc_band) if delta.hc_band else None
    stale = state is None or state["key"] != key or state["band"] != band
    behind = (
        not stale
        and delta.first_recent_seq is not None
        and delta.first_recent_seq > state["seq"] + 1
    )
    empty = state is not None and state.get("empty") and bool(delta.points)
    if stale or behind or empty or state["drawn"] > REDRAW_AFTER:
        view = store.session(key)
        if view is None:
            return None, None, None
        return (
            score_figure(view),
            None,
            {
                "key": key,
                "seq": view.history.last_seq,
                "trains": len(view.closed_trains()),
                "cues": len(view.cues),
                "band": list(view.hc_band) if view.hc_band else None,
                "drawn": 0,
                "empty": view.history.count == 0,
            },
        )
    trains = delta.closed_trains[state["trains"] :]
    cues = delta.cues[state["cues"] :]
    extension = score_extension(delta.points, delta.clock_offset, trains, cues, delta.hop_s)
    if extension is None:
        return None, None, None
    return (
        None,
        extension,
        {
            **state,
            "seq": delta.points[-1].seq if delta.points else state["seq"],
            "trains": len(delta.closed_trains),
            "cues": len(delta.cues),
            "drawn": state["drawn"] + len(delta.points),
        },
    )
