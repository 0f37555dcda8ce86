// What every Daznode page shares: the API helper (named `request`: `api` is LNbits' own)
// and formatting.
window.DAZNODE_API = '/daznode/api/v1'

window.daznodeMixin = {
  computed: {
    wallet() {
      return this.g.user.wallets[0]
    }
  },
  methods: {
    request(method, path, data, admin) {
      const key = admin ? this.wallet.adminkey : this.wallet.inkey
      return LNbits.api.request(method, window.DAZNODE_API + path, key, data)
    },
    formatSat(v) {
      return Math.round(v).toLocaleString()
    },
    // A relative change (0.25) as "+25 %".
    signedPercent(v) {
      return (v >= 0 ? '+' : '') + (v * 100).toFixed(0) + ' %'
    },
    shortKey(pk) {
      return pk ? pk.slice(0, 10) + '…' + pk.slice(-6) : ''
    },
    fromNow(ts) {
      if (!ts) return 'never'
      const diff = Math.round(ts - Date.now() / 1000)
      const abs = Math.abs(diff)
      const text = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` : `${Math.round(abs / 3600)} h`
      return diff >= 0 ? `in ${text}` : `${text} ago`
    },
    // FastAPI's validation errors come as a list: shown as "days: ensure this value is ...".
    errorText(err) {
      const d = err && err.response && err.response.data
      if (d && Array.isArray(d.detail)) {
        return d.detail.map(e => {
          const where = (e.loc || []).filter(p => p !== 'body').join('.')
          return (where ? where + ': ' : '') + (e.msg || JSON.stringify(e))
        }).join('; ')
      }
      return (d && (d.detail || d.message)) || (err && err.message) || 'Request failed'
    },
    copyText(text) {
      navigator.clipboard && navigator.clipboard.writeText(text)
      Quasar.Notify.create({message: 'Copied', timeout: 800})
    }
  }
}

// Buying a premium item: an invoice (QR + bolt11) in a dialog; LNbits' websocket says when
// it is paid, polling covers a dropped socket; the item then opens in the same dialog.
window.daznodePremiumMixin = {
  data() {
    return {
      premium: null,
      purchase: {show: false, title: '', data: null, error: '', socket: null, timer: null}
    }
  },
  methods: {
    async loadPremium() {
      try {
        const {data} = await this.request('GET', '/premium/items')
        this.premium = {on_sale: data.on_sale, prices: Object.fromEntries(data.items.map(i => [i.item, i.price_sat]))}
      } catch (err) {
        this.premium = null
      }
    },
    async buyItem(item, subject, title) {
      this.closePurchaseWatch()
      this.purchase = {show: true, title, data: null, error: '', socket: null, timer: null}
      try {
        const {data} = await this.request('POST', '/premium/purchases', {item, subject})
        this.purchase.data = data
        if (data.status !== 'paid') this.watchPurchase(data.id)
      } catch (err) {
        this.purchase.error = this.errorText(err)
      }
    },
    async renewPurchase() {
      try {
        const {data} = await this.request('POST', `/premium/purchases/${this.purchase.data.id}/renew`)
        this.purchase.data = data
      } catch (err) {
        this.purchase.error = this.errorText(err)
      }
    },
    watchPurchase(id) {
      const proto = location.protocol === 'https:' ? 'wss://' : 'ws://'
      try {
        this.purchase.socket = new WebSocket(`${proto}${location.host}/api/v1/ws/daznode-purchase-${id}`)
        this.purchase.socket.onmessage = () => this.openPurchase(id)
      } catch (e) {
        this.purchase.socket = null
      }
      this.purchase.timer = setInterval(() => this.openPurchase(id), 5000)
    },
    async openPurchase(id) {
      try {
        const {data} = await this.request('GET', `/premium/purchases/${id}`)
        if (data.content !== null) {
          this.purchase.data = data
          this.closePurchaseWatch()
        }
      } catch (err) {
        // 402 until paid: keep waiting
      }
    },
    closePurchaseWatch() {
      if (this.purchase.socket) this.purchase.socket.close()
      clearInterval(this.purchase.timer)
    }
  },
  watch: {
    'purchase.show'(open) {
      if (!open) this.closePurchaseWatch()
    }
  }
}
