// Daznode reports page: stored daily/weekly/monthly reports, building one now, downloads
// (the report's tables, raw forwards) and charts of earnings, flow and balance.
const DAY = 86400
const KIND_OPTIONS = [
  {label: 'Daily', value: 'daily'},
  {label: 'Weekly', value: 'weekly'},
  {label: 'Monthly', value: 'monthly'}
]
const EXPORT_TABLES = [
  {label: 'Channels', value: 'channels'},
  {label: 'Summary', value: 'summary'},
  {label: 'Fee changes', value: 'fee_changes'},
  {label: 'Balance buckets', value: 'balance_buckets'},
  {label: 'Highlights', value: 'highlights'}
]
const OUTCOME_COLORS = {improved: 'positive', neutral: 'grey-7', hurt: 'negative', inconclusive: 'orange-8', pending: 'blue-grey-5'}
const FLOW_CHANNELS = 20 // the busiest channels in the flow chart

// Chart instances stay outside Vue's reactivity (a proxied chart is slow and breaks).
const charts = {earnings: null, flow: null, balance: null}
let listRequest = 0 // answers to an older list request (another kind picked since) are dropped
let reportRequest = 0 // likewise for the report shown (another opened, or one just generated)

function destroyChart(name) {
  if (charts[name]) {
    charts[name].destroy()
    charts[name] = null
  }
}

function utcDay(ts) {
  return new Date(ts * 1000).toISOString().slice(0, 10)
}

function utcMinute(ts) {
  return new Date(ts * 1000).toISOString().slice(0, 16).replace('T', ' ')
}

// "2024-02-29" from a date input, as epoch seconds at that day's start (UTC); null if empty.
function dayToEpoch(text) {
  if (!text) return null
  const ms = Date.parse(text + 'T00:00:00Z')
  return Number.isNaN(ms) ? NaN : ms / 1000
}

function fileNameFrom(disposition) {
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition || '')
  return m ? decodeURIComponent(m[1]) : ''
}

window.app = Vue.createApp({
  el: '#vue',
  mixins: [windowMixin, window.daznodeMixin],
  delimiters: ['${', '}'],
  data() {
    return {
      isAdmin: window.DAZNODE_IS_ADMIN === true,
      kindOptions: KIND_OPTIONS,
      kind: 'daily',
      reports: [],
      listLoading: false,
      listError: '',
      generating: false,
      generateError: '',
      report: null,
      reportLoading: false,
      reportError: '',
      formats: null,
      formatsError: '',
      exportTables: EXPORT_TABLES,
      exportTable: 'channels',
      exporting: '',
      exportError: '',
      forwards: {since: '', until: '', error: '', busy: ''},
      seriesDays: 30,
      seriesDayOptions: [
        {label: '7 d', value: 7},
        {label: '30 d', value: 30},
        {label: '90 d', value: 90}
      ],
      series: null,
      seriesLoading: false,
      seriesError: '',
      flowShown: 0,
      channelPagination: {rowsPerPage: 10, sortBy: 'fees', descending: true},
      channelColumns: [
        {name: 'peer', label: 'Channel', align: 'left', field: r => this.name(r), sortable: true},
        {name: 'fees', label: 'Fees (sat)', align: 'right', field: 'fees_msat', sortable: true, format: v => this.sat(v)},
        {name: 'volume_out', label: 'Out (sat)', align: 'right', field: 'volume_out_msat', sortable: true, format: v => this.sat(v)},
        {name: 'volume_in', label: 'In (sat)', align: 'right', field: 'volume_in_msat', sortable: true, format: v => this.sat(v)},
        {name: 'forwards', label: 'Forwards out / in', align: 'right', field: r => r.forwards_out, format: (v, r) => `${r.forwards_out} / ${r.forwards_in}`, sortable: true},
        {name: 'cost', label: 'Rebalancing (sat)', align: 'right', field: 'rebalance_cost_msat', sortable: true, format: v => this.sat(v)},
        {name: 'net', label: 'Net (sat)', align: 'right', field: 'net_msat', sortable: true, format: v => this.sat(v)},
        {name: 'local', label: 'Local', align: 'right', field: 'local_ratio', sortable: true, format: (v, r) => (r.listed ? this.percent(v) : '—')},
        {name: 'uptime', label: 'Uptime', align: 'right', field: r => (r.uptime === null ? -1 : r.uptime), sortable: true, format: (v, r) => this.percent(r.uptime)}
      ]
    }
  },
  computed: {
    content() {
      return this.report ? this.report.data : null
    },
    channelsById() {
      const out = {}
      if (this.content) for (const c of this.content.channels) out[c.channel_id] = c
      return out
    },
    totalsRows() {
      const t = this.content && this.content.totals
      if (!t) return []
      return [
        {key: 'fees', label: 'Fees earned', value: this.sat(t.fees_msat) + ' sat', title: t.fees_msat + ' msat'},
        {key: 'volume', label: 'Volume forwarded', value: this.sat(t.volume_msat) + ' sat', title: t.volume_msat + ' msat'},
        {key: 'forwards', label: 'Forwards', value: t.forwards.toLocaleString()},
        {key: 'success', label: 'Success ratio', value: t.success_ratio === null ? 'unknown' : this.percent(t.success_ratio), title: t.failed === null ? 'This node reports settled forwards only' : t.failed + ' failed'},
        {key: 'cost', label: 'Rebalancing cost', value: this.sat(t.rebalance_cost_msat) + ' sat', title: `${t.rebalances} rebalances, ${t.rebalances_failed} failed`},
        {key: 'net', label: 'Net profit', value: this.sat(t.net_profit_msat) + ' sat', title: t.net_profit_msat + ' msat', negative: t.net_profit_msat < 0},
        {key: 'channels', label: 'Channels', value: t.channels.toLocaleString()},
        {key: 'uptime', label: 'Uptime', value: t.uptime === null ? 'unknown' : this.percent(t.uptime)}
      ]
    },
    topEarners() {
      return this.content ? this.content.top_earners.map(id => this.channelsById[id] || {channel_id: id, peer_alias: ''}) : []
    },
    idleChannels() {
      return this.content ? this.content.idle.map(id => this.channelsById[id] || {channel_id: id, peer_alias: ''}) : []
    },
    drainedChannels() {
      return this.content ? this.content.drained.map(id => this.channelsById[id] || {channel_id: id, peer_alias: ''}) : []
    },
    outcomeCounts() {
      const o = (this.content && this.content.outcomes) || {}
      return Object.entries(o).filter(([, n]) => n > 0).map(([name, n]) => ({name, n}))
    },
    bucketRows() {
      const b = (this.content && this.content.balance_buckets) || []
      const all = b.reduce((s, x) => s + x.channels, 0)
      return b.map(x => ({...x, share: all ? x.channels / all : 0}))
    },
    lowUptime() {
      if (!this.content) return []
      return this.content.channels.filter(c => c.uptime !== null && c.uptime < 0.9).sort((a, b) => a.uptime - b.uptime)
    },
    aliases() {
      const out = {}
      if (this.series) for (const c of this.series.channels) if (c.peer_alias) out[c.channel_id] = c.peer_alias
      return out
    },
    parquetOff() {
      return !this.formats || !this.formats.parquet
    }
  },
  methods: {
    sat(msat) {
      return this.formatSat((msat || 0) / 1000)
    },
    percent(v) {
      return v === null || v === undefined ? 'unknown' : (v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0) + ' %'
    },
    utcMinute,
    // A closed channel has no alias in the report: the current channel list may still know it.
    name(c) {
      return c.peer_alias || this.aliases[c.channel_id] || c.channel_id
    },
    outcomeColor(o) {
      return OUTCOME_COLORS[o] || 'grey'
    },
    changeText(c) {
      if (c.adjusted_change === null) return ''
      const node = c.node_change == null ? '' : ', node as a whole ' + this.signedPercent(c.node_change)
      return this.signedPercent(c.adjusted_change) + ' earnings vs expected' + node
    },
    // Error text of a request made for a blob: the body is a Blob even when it holds JSON.
    async blobErrorText(err) {
      const body = err && err.response && err.response.data
      if (body instanceof Blob) {
        try {
          const text = await body.text()
          try {
            const d = JSON.parse(text)
            return d.detail || d.message || text
          } catch (e) {
            return text || `Request failed (${err.response.status})`
          }
        } catch (e) {
          // fall through
        }
      }
      return this.errorText(err)
    },
    async loadFormats() {
      try {
        this.formats = (await this.request('GET', '/reports/formats', null, true)).data
        this.formatsError = ''
      } catch (err) {
        this.formatsError = this.errorText(err)
      }
    },
    async loadList(openNewest) {
      const mine = ++listRequest
      this.listLoading = true
      try {
        const q = new URLSearchParams({kind: this.kind, limit: 60})
        const {data} = await this.request('GET', '/reports?' + q, null, true)
        if (mine !== listRequest) return
        this.reports = data
        this.listError = ''
        // Keep the report shown when it is of this kind (just generated, say), else open the
        // newest one of the kind picked.
        const keep = !openNewest && this.report && this.report.kind === this.kind
        if (!keep) {
          if (this.reports.length) await this.openReport(this.reports[0].id)
          else this.report = null
        }
      } catch (err) {
        if (mine === listRequest) this.listError = this.errorText(err)
      } finally {
        if (mine === listRequest) this.listLoading = false
      }
    },
    async openReport(id) {
      const mine = ++reportRequest
      this.reportLoading = true
      try {
        const report = (await this.request('GET', '/reports/' + id, null, true)).data
        if (mine !== reportRequest) return
        this.report = report
        this.reportError = ''
        this.exportError = ''
      } catch (err) {
        if (mine === reportRequest) this.reportError = this.errorText(err)
      } finally {
        if (mine === reportRequest) this.reportLoading = false
      }
    },
    async generate() {
      this.generating = true
      this.generateError = ''
      try {
        const {data} = await this.request('POST', '/reports/generate', {kind: this.kind}, true)
        ++reportRequest // an older report's answer, still on its way, must not replace this one
        this.reportLoading = false
        this.report = data
        this.reportError = ''
        this.exportError = ''
        await this.loadList(false)
      } catch (err) {
        this.generateError = this.errorText(err)
      } finally {
        this.generating = false
      }
    },
    // A download needs the admin key header, so no plain link: fetch the file, then hand it
    // to the browser through a temporary <a download>.
    async download(path, fallbackName) {
      const res = await LNbits.api.request('GET', window.DAZNODE_API + path, this.wallet.adminkey, null, {responseType: 'blob'})
      const name = fileNameFrom(res.headers['content-disposition']) || fallbackName
      const url = URL.createObjectURL(res.data)
      const a = document.createElement('a')
      a.href = url
      a.download = name
      a.style.display = 'none'
      document.body.appendChild(a)
      a.click()
      a.remove()
      setTimeout(() => URL.revokeObjectURL(url), 60000)
    },
    async exportReport(format) {
      if (!this.report) return
      this.exporting = format
      this.exportError = ''
      const q = new URLSearchParams({format})
      if (format !== 'json') q.set('table', this.exportTable)
      try {
        const table = format === 'json' ? '' : '-' + this.exportTable
        await this.download(`/reports/${this.report.id}/export?${q}`, `daznode-${this.report.kind}-${this.report.label}${table}.${format}`)
      } catch (err) {
        this.exportError = await this.blobErrorText(err)
      } finally {
        this.exporting = ''
      }
    },
    async exportForwards(format) {
      const f = this.forwards
      f.error = ''
      const since = dayToEpoch(f.since)
      const untilDay = dayToEpoch(f.until)
      if (Number.isNaN(since) || Number.isNaN(untilDay)) {
        f.error = 'Dates must look like 2024-02-29.'
        return
      }
      const until = untilDay === null ? null : untilDay + DAY // the "to" day is included
      if (since !== null && until !== null && until <= since) {
        f.error = 'The "to" day must not be before the "from" day.'
        return
      }
      const q = new URLSearchParams({format})
      if (since !== null) q.set('since', since)
      if (until !== null) q.set('until', until)
      f.busy = format
      try {
        await this.download('/exports/forwards?' + q, `daznode-forwards.${format}`)
      } catch (err) {
        f.error = await this.blobErrorText(err)
      } finally {
        f.busy = ''
      }
    },
    async loadSeries() {
      this.seriesLoading = true
      try {
        this.series = (await this.request('GET', '/reports/series?days=' + this.seriesDays, null, true)).data
        this.seriesError = ''
      } catch (err) {
        this.seriesError = this.errorText(err)
      } finally {
        this.seriesLoading = false
      }
      await this.$nextTick()
      this.drawCharts()
    },
    drawCharts() {
      if (!this.series) return
      if (typeof Chart === 'undefined') {
        this.seriesError = 'Charts are unavailable: Chart.js did not load.'
        return
      }
      try {
        this.drawEarnings()
        this.drawFlow()
        this.drawBalance()
      } catch (err) {
        this.seriesError = 'Could not draw the charts: ' + err.message
      }
    },
    drawEarnings() {
      destroyChart('earnings')
      // Every day of the window, also those without a forward.
      const byDay = Object.fromEntries(this.series.days.map(d => [d.day_start, d]))
      const today = Math.floor(Date.now() / 1000 / DAY) * DAY
      const first = today - (this.seriesDays - 1) * DAY
      const days = []
      for (let d = first; d <= today; d += DAY) days.push(byDay[d] || {day_start: d, fees_msat: 0, rebalance_cost_msat: 0})
      charts.earnings = new Chart(this.$refs.earnings, {
        type: 'bar',
        data: {
          labels: days.map(d => utcDay(d.day_start)),
          datasets: [
            {type: 'bar', label: 'Fees earned (sat)', data: days.map(d => d.fees_msat / 1000), backgroundColor: 'rgba(38, 166, 154, 0.7)', order: 2},
            {type: 'line', label: 'Net after rebalancing (sat)', data: days.map(d => (d.fees_msat - (d.rebalance_cost_msat || 0)) / 1000), borderColor: '#ef6c00', backgroundColor: '#ef6c00', pointRadius: 2, tension: 0.2, order: 1}
          ]
        },
        options: {responsive: true, maintainAspectRatio: false, animation: false, interaction: {mode: 'index', intersect: false}}
      })
    },
    drawFlow() {
      destroyChart('flow')
      const rows = [...this.series.channels]
        .sort((a, b) => b.volume_out_msat + b.volume_in_msat - (a.volume_out_msat + a.volume_in_msat))
        .slice(0, FLOW_CHANNELS)
      this.flowShown = rows.length
      charts.flow = new Chart(this.$refs.flow, {
        type: 'bar',
        data: {
          labels: rows.map(c => (c.peer_alias || c.channel_id).slice(0, 24)),
          datasets: [
            {label: 'Out (sat)', data: rows.map(c => c.volume_out_msat / 1000), backgroundColor: 'rgba(25, 118, 210, 0.75)'},
            {label: 'In (sat)', data: rows.map(c => c.volume_in_msat / 1000), backgroundColor: 'rgba(156, 39, 176, 0.6)'}
          ]
        },
        options: {indexAxis: 'y', responsive: true, maintainAspectRatio: false, animation: false, interaction: {mode: 'index', intersect: false}}
      })
    },
    drawBalance() {
      destroyChart('balance')
      const pts = this.series.balance
      charts.balance = new Chart(this.$refs.balance, {
        type: 'line',
        data: {
          labels: pts.map(p => utcMinute(p.ts)),
          datasets: [
            {label: 'Local (sat)', data: pts.map(p => p.local_msat / 1000), borderColor: '#1976d2', backgroundColor: 'rgba(25, 118, 210, 0.15)', fill: true, pointRadius: 0, tension: 0.1},
            {label: 'Remote (sat)', data: pts.map(p => p.remote_msat / 1000), borderColor: '#9c27b0', backgroundColor: 'rgba(156, 39, 176, 0.1)', fill: true, pointRadius: 0, tension: 0.1}
          ]
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          interaction: {mode: 'index', intersect: false},
          scales: {x: {ticks: {maxTicksLimit: 8, autoSkip: true}}}
        }
      })
    }
  },
  async created() {
    if (!this.isAdmin) return
    this.loadFormats()
    await this.loadList(true)
  },
  async mounted() {
    if (this.isAdmin) await this.loadSeries()
  },
  beforeUnmount() {
    Object.keys(charts).forEach(destroyChart)
  }
})
