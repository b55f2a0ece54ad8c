// Entry point: mounts the app into index.html's #app.

import { h, render } from "preact";
import { App } from "./app.js";
import "./styles.css";

render(h(App, null), document.getElementById("app")!);
