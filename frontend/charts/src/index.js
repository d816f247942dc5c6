// Entry of the charts bundle: Chart.js with every chart type, scale and plugin registered,
// exposed as window.TelemedCharts for plain (non-module) page scripts such as
// frontend/static/lab/dashboard.js.
import { Chart, registerables } from 'chart.js';

Chart.register(...registerables);

window.TelemedCharts = { Chart };
