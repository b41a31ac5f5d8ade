/* Legetime's GraphQL playground: GraphiQL, a BankID login panel and the saved operations.
 *
 * A file of its own, served from this origin: the page has no inline script, and its Content-Security-
 * Policy lets scripts come from this origin only. It uses GraphiQL's public API (the component, its
 * `createFetcher`, its plugin API and `GraphiQL.React`), loaded from the vendored builds before it.
 *
 * The login: national ID -> startLogin -> completeLogin with the handle, polled while BankID answers
 * "pending", or after BankID's redirect back to this page (code and state in the address). The session
 * token is kept in sessionStorage (this tab only, gone when it closes) and added to every operation,
 * and to the socket's connection_init for subscriptions (GraphiQL passes the fetch headers there).
 */
(function () {
  "use strict";

  var body = document.body;
  var ENDPOINT = new URL(body.dataset.endpoint, window.location.href).toString();
  var EXAMPLES_URL = body.dataset.examples;
  var STAFF_ONLY = body.dataset.staffOnly === "true";
  var TOKEN = "legetime.playground.token";
  var HANDLE = "legetime.playground.handle";
  var h = React.createElement;

  // --- The API, for the panel --------------------------------------------------------------------

  var START = "mutation PlaygroundStartLogin($input: StartLoginInput!) { startLogin(input: $input) {" +
    " handle redirectUrl pollIntervalSeconds expiresAt message errors { code message } } }";
  var COMPLETE = "mutation PlaygroundCompleteLogin($input: CompleteLoginInput!) { completeLogin(input: $input) {" +
    " token pending message me { givenName familyName roles } errors { code message } } }";
  var ME = "query PlaygroundMe { me { givenName familyName roles } }";
  var LOGOUT = "mutation PlaygroundLogout { logout { ok errors { code message } } }";

  function token() {
    return window.sessionStorage.getItem(TOKEN);
  }

  function call(query, variables, withToken) {
    var headers = {
      "Content-Type": "application/json",
      Accept: "application/graphql-response+json, application/json",
    };
    if (withToken) headers.Authorization = "Bearer " + withToken;
    return window
      .fetch(ENDPOINT, {
        method: "POST",
        headers: headers,
        credentials: "omit",
        body: JSON.stringify({ query: query, variables: variables || {} }),
      })
      .then(function (response) {
        return response.json();
      })
      .then(function (answer) {
        if (answer.errors && answer.errors.length) throw new Error(answer.errors[0].message);
        return answer.data;
      });
  }

  function sleep(seconds) {
    return new Promise(function (resolve) {
      window.setTimeout(resolve, seconds * 1000);
    });
  }

  // --- The panel ---------------------------------------------------------------------------------

  var form = document.getElementById("lt-login");
  var input = document.getElementById("lt-national-id");
  var loginButton = document.getElementById("lt-login-button");
  var cancelButton = document.getElementById("lt-cancel");
  var session = document.getElementById("lt-session");
  var who = document.getElementById("lt-who");
  var logoutButton = document.getElementById("lt-logout");
  var statusLine = document.getElementById("lt-status");
  var attempt = 0; // a new login (or Cancel) ends the polling of the one before

  function status(text, isError) {
    statusLine.textContent = text || "";
    statusLine.classList.toggle("lt-error", Boolean(isError));
  }

  function staffRoles(me) {
    return (me.roles || []).filter(function (role) {
      return role !== "patient";
    });
  }

  function showLoggedOut() {
    session.hidden = true;
    form.hidden = false;
    loginButton.disabled = false;
    cancelButton.hidden = true;
    who.textContent = "";
  }

  function showLoggedIn(me) {
    var roles = staffRoles(me);
    form.hidden = true;
    session.hidden = false;
    who.textContent =
      "Logged in as " + me.givenName + " " + me.familyName + " (" + (roles.length ? roles : ["patient"]).join(", ") + ")";
  }

  function loggedIn(newToken, me) {
    if (STAFF_ONLY && staffRoles(me).length === 0) {
      // Production: the playground is for staff. Her session ends at once.
      return call(LOGOUT, {}, newToken)
        .catch(function () {})
        .then(function () {
          showLoggedOut();
          status("The playground is for staff: " + me.givenName + " has no staff role.", true);
        });
    }
    window.sessionStorage.setItem(TOKEN, newToken);
    showLoggedIn(me);
    status("");
    renderIde();
  }

  function complete(handle, params, interval, expiresAt, message, mine) {
    var deadline = expiresAt ? Date.parse(expiresAt) : Date.now() + 10 * 60 * 1000;
    return call(COMPLETE, { input: { handle: handle, params: params } }).then(function (data) {
      var done = data.completeLogin;
      if (mine !== attempt) return;
      if (done.errors.length) throw new Error(done.errors[0].message);
      if (!done.pending) return loggedIn(done.token, done.me);
      if (Date.now() > deadline) throw new Error("The login expired: start again.");
      status(done.message || message || "Waiting for BankID…");
      return sleep(interval || 2).then(function () {
        if (mine === attempt) return complete(handle, null, interval, expiresAt, message, mine);
      });
    });
  }

  function logIn(nationalId) {
    var mine = ++attempt;
    loginButton.disabled = true;
    cancelButton.hidden = false;
    status("Starting BankID…");
    var returnUrl = window.location.origin + window.location.pathname;
    return call(START, { input: { nationalId: nationalId, returnUrl: returnUrl } })
      .then(function (data) {
        var started = data.startLogin;
        if (started.errors.length) throw new Error(started.errors[0].message);
        if (started.redirectUrl) {
          // BankID in the browser: it sends us back here with code and state (see resume()).
          window.sessionStorage.setItem(HANDLE, started.handle);
          status("Going to BankID…");
          window.location.assign(started.redirectUrl);
          return;
        }
        if (started.message) status(started.message);
        return complete(started.handle, null, started.pollIntervalSeconds, started.expiresAt, started.message, mine);
      })
      .catch(function (error) {
        if (mine !== attempt) return;
        showLoggedOut();
        status(error.message, true);
      });
  }

  function resume() {
    // Back from BankID's redirect: finish the login started before it, then tidy the address.
    var query = new URLSearchParams(window.location.search);
    var handle = window.sessionStorage.getItem(HANDLE);
    if (!handle || !query.has("state") || !(query.has("code") || query.has("error"))) return false;
    var params = {};
    ["code", "state", "error", "error_description"].forEach(function (name) {
      if (query.has(name)) params[name] = query.get(name);
    });
    window.sessionStorage.removeItem(HANDLE);
    window.history.replaceState(null, "", window.location.pathname);
    var mine = ++attempt;
    status("Completing the BankID login…");
    complete(handle, params, 2, null, null, mine).catch(function (error) {
      showLoggedOut();
      status(error.message, true);
    });
    return true;
  }

  function restore() {
    var current = token();
    if (!current) return showLoggedOut();
    call(ME, {}, current)
      .then(function (data) {
        if (data.me) return loggedIn(current, data.me); // the staff rule again, for a token from before
        window.sessionStorage.removeItem(TOKEN);
        showLoggedOut();
        status("The session has ended: log in again.");
      })
      .catch(function (error) {
        showLoggedOut();
        status(error.message, true);
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var nationalId = input.value.replace(/\s+/g, "");
    if (!nationalId) return status("Type a national ID.", true);
    logIn(nationalId);
  });

  cancelButton.addEventListener("click", function () {
    attempt++;
    showLoggedOut();
    status("Login cancelled.");
  });

  logoutButton.addEventListener("click", function () {
    var current = token();
    window.sessionStorage.removeItem(TOKEN);
    showLoggedOut();
    renderIde();
    if (!current) return;
    call(LOGOUT, {}, current)
      .then(function () {
        status("Logged out.");
      })
      .catch(function (error) {
        status(error.message, true);
      });
  });

  if (!resume()) restore();

  // --- GraphiQL ----------------------------------------------------------------------------------

  var subscriptionUrl = (function () {
    var url = new URL(ENDPOINT);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    return url.toString();
  })();
  var base = GraphiQL.createFetcher({ url: ENDPOINT, subscriptionUrl: subscriptionUrl });

  function fetcher(params, options) {
    // The panel's token, unless the Headers tab names an Authorization of its own.
    var current = token();
    var headers = Object.assign({}, current ? { Authorization: "Bearer " + current } : {}, (options && options.headers) || {});
    return base(params, Object.assign({}, options, { headers: headers }));
  }

  var examples = [];
  var examplesLoaded = window
    .fetch(EXAMPLES_URL, { credentials: "omit" })
    .then(function (response) {
      return response.json();
    })
    .then(function (list) {
      examples = list;
    })
    .catch(function () {
      examples = [];
    });

  function ExamplesIcon() {
    return h(
      "svg",
      { viewBox: "0 0 24 24", width: "1em", height: "1em", fill: "none", stroke: "currentColor", strokeWidth: 1.5, "aria-hidden": "true" },
      h("path", { d: "M4 5h16M4 10h16M4 15h10M4 20h7" })
    );
  }

  function ExamplesContent() {
    var editor = GraphiQL.React.useEditorContext({ nonNull: true, caller: ExamplesContent });
    var open = function (example) {
      editor.addTab();
      window.setTimeout(function () {
        if (editor.queryEditor) editor.queryEditor.setValue(example.query);
        if (editor.variableEditor) editor.variableEditor.setValue(example.variables || "");
      }, 0);
    };
    var groups = [
      ["Daily", examples.filter(function (e) { return !e.walkthrough; })],
      ["The README's walkthrough", examples.filter(function (e) { return e.walkthrough; })],
    ];
    return h(
      "div",
      { className: "lt-examples" },
      h("div", { className: "graphiql-doc-explorer-title" }, "Examples"),
      h("p", { className: "lt-examples-note" }, "Each opens in a new tab. Log in as the person or role named first."),
      groups.map(function (group) {
        return h(
          "section",
          { key: group[0] },
          h("h3", null, group[0]),
          h(
            "ul",
            null,
            group[1].map(function (example) {
              return h(
                "li",
                { key: example.key },
                h(
                  "button",
                  { type: "button", className: "lt-example", "data-example": example.key, onClick: function () { open(example); } },
                  h("span", { className: "lt-example-title" }, example.title),
                  h("span", { className: "lt-example-who" }, example.who)
                )
              );
            })
          )
        );
      })
    );
  }

  var examplesPlugin = { title: "Examples", icon: ExamplesIcon, content: ExamplesContent };
  var explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();
  var WELCOME =
    "# Legetime's GraphQL playground.\n" +
    "#\n" +
    "# Log in with BankID in the bar above: the session token stays in this tab and goes with\n" +
    "# every operation (subscriptions too). Then open a saved operation under Examples (the list\n" +
    "# icon on the left) or write your own; Ctrl-Enter runs it.\n" +
    "\n" +
    "{ me { givenName familyName roles } }\n";

  var root = null;

  function renderIde() {
    if (!root) return;
    // A new fetcher whenever the login changes: GraphiQL then fetches the schema again, which the
    // server gives staff where everyone else gets none (production).
    var current = function (params, options) {
      return fetcher(params, options);
    };
    root.render(
      h(GraphiQL, {
        fetcher: current,
        plugins: [examplesPlugin, explorerPlugin],
        visiblePlugin: examplesPlugin,
        defaultQuery: WELCOME,
        defaultEditorToolsVisibility: true,
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: false,
        inputValueDeprecation: true,
        storage: window.sessionStorage, // tabs and history for this tab only, like the token
      })
    );
  }

  examplesLoaded.then(function () {
    root = ReactDOM.createRoot(document.getElementById("graphiql"));
    renderIde();
  });
})();
