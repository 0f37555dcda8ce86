// Daznode what-if page: simulate the node under baseline fee policies and Daznode profiles,
// follow the run, compare the results (table, charts, channels); shadow mode's track record.
const STATUS_POLL_MS = 1000
const COLORS = ['#1976d2', '#ef6c00', '#26a69a', '#9c27b0', '#c62828', '#6d4c41', '#546e7a', '#f9a825', '#2e7d32']

// Chart instances stay outside Vue's reactivity (a proxied chart is slow and breaks).
const charts = {profit: null, volume: null}
let runRequest = 0 // an older run's answer (another one picked since) is dropped

function destroyChart(name) {
  if (charts[name]) {
    charts[name].destroy()
    charts[name] = null
  }
}

function utcMinute(ts) {
  return new Date(ts * 1000).toISOString().slice(0, 16).replace('T', ' ')
}

window.app = Vue.createApp({
  el: '#vue',
  mixins: [windowMixin, window.daznodeMixin],
  delimiters: ['${', '}'],
  data() {
    return {
      isAdmin: window.DAZNODE_IS_ADMIN === true,
      options: null,
      optionsError: '',
      form: {policies: ['static', 'chargelnd', 'lndg', 'clboss', 'current'], profiles: ['balanced'], levels: '', days: 30, seed: 1, calibrate: true, senders: null},
      levelDialog: {show: false, percent: null, sending: false, error: ''},
      levelProposal: null,
      starting: false,
      cancelling: false,
      cancelError: '',
      formError: '',
      job: null,
      pollTimer: null,
      runs: [],
      runsLoading: false,
      runsError: '',
      run: null,
      runLoading: false,
      runError: '',
      chartError: '',
      channelPolicy: null,
      shadow: null,
      shadowError: '',
      shadowForm: {enabled: false, days: 7, senders: 150, propose_levels: false},
      shadowSaving: false,
      shadowStarting: false,
      resultColumns: [
        {name: 'name', label: 'Policy', align: 'left', field: 'name', style: 'white-space: normal; min-width: 100px'},
        {name: 'net', label: 'Net profit (sat)', align: 'right', field: 'net_profit_sat', sortable: true, format: v => this.formatSat(v)},
        {name: 'vs_static', label: 'vs static', align: 'right', field: r => this.vsStatic(r), sortable: true, format: (v, r) => (r.key === 'static' ? 'baseline' : this.signedPercent(v))},
        {name: 'fees', label: 'Fees (sat)', align: 'right', field: 'fees_sat', sortable: true, format: v => this.formatSat(v)},
        {name: 'cost', label: 'Rebalancing cost (sat)', align: 'right', field: 'rebalance_cost_sat', sortable: true, format: v => this.formatSat(v)},
        {name: 'volume', label: 'Volume (sat)', align: 'right', field: 'volume_sat', sortable: true, format: v => this.formatSat(v)},
        {name: 'forwards', label: 'Forwards', align: 'right', field: 'forwards', sortable: true, format: v => v.toLocaleString()},
        {name: 'fallback', label: 'Sent after a cheaper route failed', align: 'right', field: r => (r.forwards ? r.fallback_forwards / r.forwards : -1), sortable: true, format: (v, r) => this.rate(r.forwards ? r.fallback_forwards / r.forwards : null)},
        {name: 'success', label: 'Success rate', align: 'right', field: r => (r.success_rate === null ? -1 : r.success_rate), sortable: true, format: (v, r) => this.rate(r.success_rate)},
        {name: 'updates', label: 'Policy updates', align: 'right', field: 'policy_updates', sortable: true, format: v => v.toLocaleString()},
        {name: 'rebalances', label: 'Rebalances', align: 'right', field: 'rebalances', sortable: true, format: v => v.toLocaleString()}
      ].map(c => ({...c, headerStyle: 'white-space: normal; vertical-align: bottom'})),
      resultPagination: {rowsPerPage: 0},
      channelColumns: [
        {name: 'peer', label: 'Channel', align: 'left', field: r => r.peer_alias || r.channel_id, sortable: true},
        {name: 'capacity', label: 'Capacity (sat)', align: 'right', field: 'capacity_sat', sortable: true, format: v => this.formatSat(v)},
        {name: 'fee', label: 'Final fee (ppm)', align: 'right', field: 'fee_ppm', sortable: true},
        {name: 'local', label: 'Local at the end', align: 'right', field: 'local_ratio', sortable: true, format: v => Math.round(v * 100) + ' %'},
        {name: 'fees', label: 'Fees earned (sat)', align: 'right', field: 'fees_sat', sortable: true, format: v => this.formatSat(v)},
        {name: 'forwards', label: 'Forwards out', align: 'right', field: 'forwards_out', sortable: true, format: v => v.toLocaleString()},
        {name: 'failed', label: 'Failed out', align: 'right', field: 'failed_out', sortable: true, format: v => v.toLocaleString()}
      ],
      channelPagination: {rowsPerPage: 10, sortBy: 'fees', descending: true}
    }
  },
  computed: {
    running() {
      return !!this.job && this.job.state === 'running'
    },
    maxDays() {
      return (this.options && this.options.max_days) || 90
    },
    sendersRange() {
      return (this.options && this.options.senders) || {min: 20, default: 150, max: 500}
    },
    runCancelled() {
      return !!this.run && this.run.status === 'failed' && (this.run.error || '').startsWith('cancelled')
    },
    profileOptions() {
      if (!this.options) return []
      return this.options.profiles.map(p => ({
        value: p,
        label: p === 'active' ? `active (${this.options.active_profile})` : p + (p === this.options.active_profile ? ' (active)' : '')
      }))
    },
    chosenCount() {
      const levels = this.parseLevels(this.form.levels)
      return this.form.policies.length + this.form.profiles.length + levels.values.length
    },
    levelRange() {
      return (this.options && this.options.levels) || {min: 10, max: 1000}
    },
    result() {
      return this.run && this.run.result ? this.run.result : null
    },
    results() {
      return this.result ? this.result.results : []
    },
    staticResult() {
      return this.results.find(r => r.key === 'static') || null
    },
    bestKey() {
      if (!this.results.length) return null
      return this.results.reduce((best, r) => (r.net_profit_sat > best.net_profit_sat ? r : best)).key
    },
    bestResult() {
      return this.results.find(r => r.key === this.bestKey) || null
    },
    shownResultColumns() {
      return this.staticResult ? this.resultColumns : this.resultColumns.filter(c => c.name !== 'vs_static')
    },
    channelPolicyOptions() {
      return this.results.map(r => ({label: r.name, value: r.key}))
    },
    channelRows() {
      const r = this.results.find(x => x.key === this.channelPolicy)
      return r ? r.channels : []
    },
    demandRows() {
      const res = this.result
      if (!res) return []
      const s = res.stats || {}
      const d = res.demand || {}
      const rows = [
        {key: 'payments', label: 'Payments per day across the network', value: (d.payments_per_day || 0).toLocaleString()},
        {key: 'median', label: 'Median payment', value: this.formatSat(d.median_amount_sat || 0) + ' sat'}
      ]
      if (s.payments_drawn !== undefined) rows.push({key: 'kept', label: 'Payments that tried a route through the node', value: `${(s.payments_kept || 0).toLocaleString()} of ${s.payments_drawn.toLocaleString()} in the network`})
      if (s.senders !== undefined) rows.push({key: 'senders', label: 'Paying nodes sampled', value: s.senders.toLocaleString()})
      rows.push({key: 'channels', label: 'Channels simulated', value: String(this.run.request.channels)})
      if (res.seconds !== undefined) rows.push({key: 'seconds', label: 'Simulation time', value: `${res.seconds} s` + (res.peak_rss_mb ? `, ${Math.round(res.peak_rss_mb)} MB` : '')})
      return rows
    },
    calibrationText() {
      const res = this.result
      if (!res) return ''
      const s = res.stats || {}
      const req = this.run.request
      if (s.calibrated_payments_per_day !== undefined && s.calibrated_payments_per_day !== null) {
        let text = `Calibrated on the node's history: ${s.calibration_target_per_day} forwards per day at its current fees.`
        if (s.calibration_measured_per_day !== undefined && s.calibration_measured_per_day !== null) {
          const sample = s.calibration_sample_payments_per_day
          text += ` A sample of ${sample ? sample.toLocaleString() : 'the default'} payments per day forwarded ${s.calibration_measured_per_day} per day, so the demand was scaled to ${s.calibrated_payments_per_day.toLocaleString()} payments per day.`
        }
        if (s.calibration_capped) text += ' That hit the bounds of the demand: the match is not exact.'
        return text
      }
      if (!req.calibrate) return 'Not calibrated: the default demand was used (calibration was off).'
      if (!req.history) return "Not calibrated: the node had too few forwards in the last 30 days, so the default demand was used."
      return 'Not calibrated: the default demand was used.'
    },
    shadowRecordText() {
      const t = this.shadow && this.shadow.track_record
      if (!t || !t.runs) return ''
      const median = t.median_difference_sat
      return `Engine ahead in ${t.engine_ahead} of ${t.runs} run${t.runs === 1 ? '' : 's'}; median difference ${median > 0 ? '+' : ''}${this.formatSat(median)} sat.`
    },
    shadowLevelTexts() {
      const t = this.shadow && this.shadow.track_record
      return ((t && t.levels) || []).map(lv => ({
        percent: lv.percent,
        text:
          `At ${lv.percent} % of the current fees: ahead of them in ${lv.ahead} of ${lv.runs} run${lv.runs === 1 ? '' : 's'}, ` +
          `median difference ${lv.median_difference_sat > 0 ? '+' : ''}${this.formatSat(lv.median_difference_sat)} sat.`
      }))
    }
  },
  methods: {
    utcMinute,
    rate(v) {
      return v === null || v === undefined ? '—' : (v * 100).toFixed(1) + ' %'
    },
    vsStatic(r) {
      const base = this.staticResult
      if (!base || r.key === 'static' || base.net_profit_sat === 0) return null
      return ((r.net_profit_sat - base.net_profit_sat) / Math.abs(base.net_profit_sat)) * 100
    },
    signedPercent(v) {
      if (v === null || v === undefined) return '—'
      return (v > 0 ? '+' : '') + v.toFixed(1) + ' %'
    },
    vsStaticTitle(r) {
      const base = this.staticResult
      if (!base) return ''
      if (r.key === 'static') return 'the baseline'
      const diff = r.net_profit_sat - base.net_profit_sat
      const text = `${diff >= 0 ? '+' : ''}${this.formatSat(diff)} sat vs static`
      return base.net_profit_sat === 0 ? text + ' (static earned nothing: no percentage)' : text
    },
    policyLabel(key) {
      if (!this.options) return key
      if (key.startsWith('daznode:')) return 'Daznode ' + key.slice(8)
      if (key.startsWith('level:')) return 'current fees at ' + key.slice(6) + ' %'
      const p = this.options.policies.find(x => x.key === key)
      return p ? p.name : key
    },
    runTitle(r) {
      const req = r.request || {}
      const chosen = [...(req.policies || []), ...(req.levels || []).map(p => 'level:' + p), ...(req.profiles || []).map(p => 'daznode:' + p)]
      return chosen.map(k => this.policyLabel(k)).join(', ')
    },
    runBest(r) {
      const s = r.summary || []
      if (!s.length) return null
      return s.reduce((best, x) => (x.net_profit_sat > best.net_profit_sat ? x : best))
    },
    async loadOptions() {
      try {
        const {data} = await this.request('GET', '/sim/options', null, true)
        this.options = data
        this.optionsError = ''
        this.form.days = Math.min(this.form.days, data.max_days)
        if (this.form.senders === null) this.form.senders = data.senders.default // once: keep what was typed
        const keys = data.policies.map(p => p.key)
        this.form.policies = this.form.policies.filter(k => keys.includes(k))
        this.form.profiles = this.form.profiles.filter(p => data.profiles.includes(p))
        this.setJob(data.job)
      } catch (err) {
        this.optionsError = this.errorText(err)
      }
    },
    setJob(job) {
      const was = this.job
      this.job = job
      if (this.running) {
        if (!this.pollTimer) this.pollTimer = setInterval(this.pollStatus, STATUS_POLL_MS)
      } else {
        this.stopPolling()
        if (was && was.state === 'running' && was.run_id === job.run_id) this.finished(job)
      }
    },
    stopPolling() {
      clearInterval(this.pollTimer)
      this.pollTimer = null
    },
    async pollStatus() {
      try {
        const {data} = await this.request('GET', '/sim/status', null, true)
        this.setJob(data)
      } catch (err) {
        // A missed beat: the next one tries again.
      }
    },
    async cancelRun() {
      this.cancelError = ''
      this.cancelling = true
      try {
        const {data} = await this.request('POST', '/sim/cancel', null, true)
        this.setJob(data)
      } catch (err) {
        this.cancelError = this.errorText(err)
        await this.pollStatus() // it may have finished meanwhile
      } finally {
        this.cancelling = false
      }
    },
    async finished(job) {
      if (job.state === 'cancelled') {
        if (job.kind === 'shadow') await this.loadShadow()
        else await this.loadRuns(false)
        return
      }
      if (job.kind === 'shadow') {
        await this.loadShadow()
        return
      }
      await this.loadRuns(false)
      await this.openRun(job.run_id)
    },
    levelOf(row) {
      // A price level's result ("level:150") -> 150; any other policy -> null.
      const m = /^level:(\d+)$/.exec(row.key || '')
      return m ? Number(m[1]) : null
    },
    parseLevels(text) {
      // "50, 150 200" -> [50, 150, 200]; the first token that is not a whole number is the error.
      const tokens = String(text || '').split(/[\s,;]+/).filter(t => t)
      const bad = tokens.find(t => !/^\d+$/.test(t))
      if (bad !== undefined) return {values: [], error: `Price levels: "${bad}" is not a whole number of %.`}
      return {values: [...new Set(tokens.map(Number))], error: ''}
    },
    askLevel(percent) {
      this.levelDialog = {show: true, percent, runId: this.run.id, sending: false, error: ''}
    },
    async proposeLevel() {
      const d = this.levelDialog
      d.sending = true
      d.error = ''
      try {
        const {data} = await this.request('POST', '/changes/level', {run_id: d.runId, percent: d.percent}, true)
        // The dialog may have been closed and another level asked for meanwhile.
        if (this.levelDialog === d && this.run && this.run.id === d.runId) {
          this.levelProposal = {percent: d.percent, ...data}
          d.show = false
        }
      } catch (err) {
        d.error = this.errorText(err)
      } finally {
        d.sending = false
      }
    },
    async startRun() {
      this.formError = ''
      const levels = this.parseLevels(this.form.levels)
      if (levels.error) {
        this.formError = levels.error
        return
      }
      this.starting = true
      const body = {
        policies: [...this.form.policies],
        profiles: [...this.form.profiles],
        levels: levels.values,
        days: this.form.days === '' ? null : this.form.days,
        seed: this.form.seed === '' ? null : this.form.seed,
        calibrate: this.form.calibrate,
        senders: this.form.senders === '' ? null : this.form.senders
      }
      try {
        const {data} = await this.request('POST', '/sim/runs', body, true)
        this.setJob(data.job)
        await this.loadRuns(false)
      } catch (err) {
        this.formError = this.errorText(err)
        if (err.response && err.response.status === 409) await this.pollStatus() // one is going: show it
      } finally {
        this.starting = false
      }
    },
    async loadRuns(openNewest) {
      this.runsLoading = true
      try {
        const {data} = await this.request('GET', '/sim/runs?kind=whatif', null, true)
        this.runs = data
        this.runsError = ''
        if (openNewest && !this.run) {
          const done = data.find(r => r.status !== 'running')
          if (done) await this.openRun(done.id)
        }
      } catch (err) {
        this.runsError = this.errorText(err)
      } finally {
        this.runsLoading = false
      }
    },
    async openRun(id) {
      const mine = ++runRequest
      this.runLoading = true
      try {
        const {data} = await this.request('GET', '/sim/runs/' + id, null, true)
        if (mine !== runRequest) return
        if (!this.run || this.run.id !== data.id) this.levelProposal = null
        this.run = data
        this.runError = ''
        const keys = this.results.map(r => r.key)
        if (!keys.includes(this.channelPolicy)) this.channelPolicy = this.bestKey
      } catch (err) {
        if (mine === runRequest) this.runError = this.errorText(err)
      } finally {
        if (mine === runRequest) this.runLoading = false
      }
      if (mine !== runRequest) return
      await this.$nextTick()
      this.drawCharts()
    },
    drawCharts() {
      destroyChart('profit')
      destroyChart('volume')
      this.chartError = ''
      if (!this.results.length) return
      if (typeof Chart === 'undefined') {
        this.chartError = 'Charts are unavailable: Chart.js did not load.'
        return
      }
      try {
        const days = Math.max(this.result.days || this.run.request.days || 0, ...this.results.map(r => r.daily.length))
        const labels = Array.from({length: days}, (_, i) => `Day ${i + 1}`)
        const perDay = (r, f) => {
          const byDay = Object.fromEntries(r.daily.map(d => [d.day, d]))
          return labels.map((_, i) => (byDay[i + 1] ? f(byDay[i + 1]) : 0))
        }
        const options = {responsive: true, maintainAspectRatio: false, animation: false, interaction: {mode: 'index', intersect: false}}
        charts.profit = new Chart(this.$refs.profit, {
          type: 'line',
          data: {
            labels,
            datasets: this.results.map((r, i) => {
              let total = 0
              const net = perDay(r, d => (d.fees_msat - d.rebalance_cost_msat) / 1000)
              return {
                label: r.name,
                data: net.map(v => (total += v)),
                borderColor: COLORS[i % COLORS.length],
                backgroundColor: COLORS[i % COLORS.length],
                borderWidth: r.key === this.bestKey ? 3 : 2,
                pointRadius: days > 31 ? 0 : 2,
                tension: 0.15
              }
            })
          },
          options: {...options, scales: {y: {title: {display: true, text: 'sat'}}}}
        })
        charts.volume = new Chart(this.$refs.volume, {
          type: 'bar',
          data: {
            labels,
            datasets: this.results.map((r, i) => ({
              label: r.name,
              data: perDay(r, d => d.volume_msat / 1000),
              backgroundColor: COLORS[i % COLORS.length]
            }))
          },
          options: {...options, scales: {y: {title: {display: true, text: 'sat'}}}}
        })
      } catch (err) {
        this.chartError = 'Could not draw the charts: ' + err.message
      }
    },
    async loadShadow() {
      try {
        const {data} = await this.request('GET', '/sim/shadow', null, true)
        this.shadow = data
        this.shadowForm = {enabled: data.enabled, days: data.days, senders: data.senders, propose_levels: data.propose_levels}
        this.shadowError = ''
      } catch (err) {
        this.shadowError = this.errorText(err)
      }
    },
    async saveShadow() {
      this.shadowSaving = true
      this.shadowError = ''
      const blank = v => (v === '' ? null : v)
      const body = {
        enabled: this.shadowForm.enabled,
        days: blank(this.shadowForm.days),
        senders: blank(this.shadowForm.senders),
        propose_levels: this.shadowForm.propose_levels
      }
      try {
        const {data} = await this.request('PUT', '/sim/shadow', body, true)
        if (this.shadow) Object.assign(this.shadow, data)
        Quasar.Notify.create({type: 'positive', message: `Shadow mode ${data.enabled ? 'on' : 'off'}, ${data.days} days ahead`, timeout: 1500})
      } catch (err) {
        this.shadowError = this.errorText(err)
      } finally {
        this.shadowSaving = false
      }
    },
    async runShadow() {
      this.shadowStarting = true
      this.shadowError = ''
      try {
        const {data} = await this.request('POST', '/sim/shadow/run', null, true)
        this.setJob(data.job)
        await this.loadShadow()
      } catch (err) {
        this.shadowError = this.errorText(err)
        if (err.response && err.response.status === 409) await this.pollStatus()
      } finally {
        this.shadowStarting = false
      }
    }
  },
  async created() {
    if (!this.isAdmin) return
    await this.loadOptions()
    this.loadShadow()
    await this.loadRuns(true)
  },
  beforeUnmount() {
    this.stopPolling()
    Object.keys(charts).forEach(destroyChart)
  }
})
